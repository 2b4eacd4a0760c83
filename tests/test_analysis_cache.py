"""Analysis proportional to what changed: a notebook analysed again after an edit scope-analyses only
the step whose code changed (the facts of code are kept by its text)."""

from __future__ import annotations

import json

from kale_like.frontends import analysis
from kale_like.frontends.notebook import notebook_to_graph


def _notebook(path, steps: dict[str, str]):
    cells = [{"cell_type": "code", "id": "i", "metadata": {"tags": ["imports"]}, "execution_count": None,
              "outputs": [], "source": "import math"}]
    for name, code in steps.items():
        cells.append({"cell_type": "code", "id": name, "metadata": {"tags": [f"step:{name}"]},
                      "execution_count": None, "outputs": [], "source": code})
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))
    return path


def _counting(monkeypatch) -> list[str]:
    analysed: list[str] = []
    original = analysis.analyze_module

    def counted(module):
        analysed.append(module.code)
        return original(module)

    monkeypatch.setattr(analysis, "analyze_module", counted)
    return analysed


def test_an_edit_analyses_only_the_step_that_changed(tmp_path, monkeypatch):
    steps = {"load": "seed_value_a = 11\n", "double": "twice_a = seed_value_a * 2\n",
             "root": "root_a = math.sqrt(twice_a)\n"}
    path = _notebook(tmp_path / "nb.ipynb", steps)
    analysed = _counting(monkeypatch)
    first = notebook_to_graph(path)
    assert set(steps.values()) <= set(analysed)  # (the imports cell too, unless another test analysed it)
    analysed.clear()
    _notebook(path, {**steps, "double": "twice_a = seed_value_a * 3\n"})
    second = notebook_to_graph(path)
    assert analysed == ["twice_a = seed_value_a * 3\n"]
    assert [s.name for s in second.body] == [s.name for s in first.body]
    assert second.step("root").inputs == first.step("root").inputs


def test_kept_facts_are_the_callers_own(monkeypatch):
    code = "kept_total = kept_base + 1\n"
    first = analysis.analyze(code)
    first.reads.clear()
    assert "kept_base" in analysis.analyze(code).reads


def test_a_syntax_error_still_names_the_cell_after_the_code_was_analysed(tmp_path):
    path = _notebook(tmp_path / "nb.ipynb", {"load": "x_cached = 1\n", "use": "y_cached = x_cached +\n"})
    from kale_like.errors import KaleLikeError

    for _ in range(2):  # the second time the good step's facts are kept
        try:
            notebook_to_graph(path)
        except KaleLikeError as error:
            assert "syntax error" in error.render() and "cell 3" in error.render().lower()
        else:
            raise AssertionError("the syntax error was not reported")
