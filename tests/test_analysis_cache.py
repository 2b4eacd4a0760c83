"""Analysis proportional to what changed: a notebook analysed again after an edit scope-analyses only
the step whose code changed (the facts of code are kept by its text, in the process and in the
cache folder for the next process)."""

from __future__ import annotations

import json

from kale_like.frontends import analysis, kept_facts
from kale_like.frontends.notebook import notebook_to_graph


def _notebook(path, steps: dict[str, str]):
    cells = [{"cell_type": "code", "id": "i", "metadata": {"tags": ["imports"]}, "execution_count": None,
              "outputs": [], "source": "import math"}]
    for name, code in steps.items():
        cells.append({"cell_type": "code", "id": name, "metadata": {"tags": [f"step:{name}"]},
                      "execution_count": None, "outputs": [], "source": code})
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))
    return path


def _counting(monkeypatch, tmp_path) -> list[str]:
    monkeypatch.setenv("KALE_LIKE_CACHE_DIR", str(tmp_path / "cache"))
    analysed: list[str] = []
    original = analysis._analyzed  # the analysis of code whose facts are not kept (fast_facts or libcst)

    def counted(code):
        analysed.append(code)
        return original(code)

    monkeypatch.setattr(analysis, "_analyzed", counted)
    return analysed


def test_an_edit_analyses_only_the_step_that_changed(tmp_path, monkeypatch):
    steps = {"load": "seed_value_a = 11\n", "double": "twice_a = seed_value_a * 2\n",
             "root": "root_a = math.sqrt(twice_a)\n"}
    path = _notebook(tmp_path / "nb.ipynb", steps)
    analysed = _counting(monkeypatch, tmp_path)
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


def test_the_next_process_reads_the_facts_kept_in_the_cache_folder(tmp_path, monkeypatch):
    steps = {"first": "kept_seed_b = 5\n", "second": "kept_twice_b = kept_seed_b * 2\n"}
    path = _notebook(tmp_path / "nb.ipynb", steps)
    analysed = _counting(monkeypatch, tmp_path)
    first = notebook_to_graph(path)
    assert set(steps.values()) <= set(analysed)
    monkeypatch.setattr(analysis, "_KEPT", type(analysis._KEPT)())  # as a new process starts
    analysed.clear()
    _notebook(path, {**steps, "second": "kept_twice_b = kept_seed_b * 4\n"})
    second = notebook_to_graph(path)
    assert [code for code in analysed if code.strip() != "import math"] == ["kept_twice_b = kept_seed_b * 4\n"]
    assert second.step("second").inputs == first.step("second").inputs


def test_a_damaged_facts_file_is_analysed_around_and_replaced(tmp_path, monkeypatch):
    path = _notebook(tmp_path / "nb.ipynb", {"only": "damaged_case_c = 3\n"})
    analysed = _counting(monkeypatch, tmp_path)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "analysis-facts.sqlite").write_bytes(b"not a database at all" * 100)
    assert [s.name for s in notebook_to_graph(path).body] == ["only"]
    assert "damaged_case_c = 3\n" in analysed
    assert kept_facts.recall(["damaged_case_c = 3\n"])  # the damaged file was replaced by a new one


def test_many_steps_analysed_on_every_core_give_the_same_graph(tmp_path):
    """The command line analyses a notebook of many steps in forked workers (`analyze_all`); the graph
    is the one analysed on one core (KALE_LIKE_ONE_CORE=1), a syntax error still reported by step."""
    import os
    import subprocess
    import sys

    steps = {f"s{i}": (f"v{i} = v{i - 1} + {i}\n" if i else "v0 = 1\n") + f"w{i} = [v{i}, math.pi]\n"
             for i in range(2 * analysis.MANY)}
    path = _notebook(tmp_path / "many.ipynb", steps)

    def graph_json(**env: str) -> str:
        run = subprocess.run([sys.executable, "-m", "kale_like", str(path), "--graph-json"], capture_output=True,
                             text=True, timeout=300, check=False,
                             env={**os.environ, "KALE_LIKE_CACHE_DIR": str(tmp_path / env.pop("cache")), **env})
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert graph_json(cache="a") == graph_json(cache="b", KALE_LIKE_ONE_CORE="1")
    steps["s7"] = "v7 = (\n"
    broken = _notebook(tmp_path / "many.ipynb", steps)
    run = subprocess.run([sys.executable, "-m", "kale_like", str(broken), "--graph-json"], capture_output=True,
                         text=True, timeout=300, check=False,
                         env={**os.environ, "KALE_LIKE_CACHE_DIR": str(tmp_path / "c")})
    assert run.returncode == 2 and "syntax error" in run.stderr and "s7" in run.stderr
