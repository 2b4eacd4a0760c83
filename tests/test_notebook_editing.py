"""Editing a notebook without traps: what the step editor lets a user type compiles to what they meant.

A `when:` value naming a parameter compares with that parameter (not the string of its name); a value
that is neither a literal nor a parameter is refused on its cell; an unknown tag gets one "did you
mean"; a cycle message names the steps on the cycle; compiled files get the user's umask.
"""

from __future__ import annotations

import os
import stat

import nbformat
import pytest
import yaml

import kale_like
from kale_like.errors import KaleLikeError
from kale_like.frontends.tags import unknown_tag_hint

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")


def write_notebook(path, cells: list[tuple[str, list[str]]]):
    notebook = nbformat.v4.new_notebook()
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        notebook.cells.append(cell)
    nbformat.write(notebook, path)
    return path


def gated(tmp_path, value: str):
    return write_notebook(tmp_path / "gated.ipynb", [
        ("min_score = 0.5", ["pipeline-parameters"]),
        ("best_score = 0.75", ["step:pick"]),
        ("print('deploying', best_score)", ["step:deploy", f"when:best_score:>=:{value}"]),
    ])


def test_a_when_value_naming_a_parameter_compares_with_the_parameter(tmp_path):
    source = gated(tmp_path, "min_score")
    spec = next(yaml.safe_load_all(kale_like.compile(str(source))))
    (condition,) = [task["triggerPolicy"]["condition"] for task in spec["root"]["dag"]["tasks"].values()
                    if "triggerPolicy" in task]
    assert "pipelinechannel--min_score" in condition and "'min_score'" not in condition
    store = tmp_path / "store"
    ran = kale_like.run(str(source), store=store, echo=False, max_workers=1, backend="thread")
    assert ran.status == "SUCCEEDED"
    assert {t.label: t.status for t in ran.tasks}["deploy"] == "done"
    higher = kale_like.run(str(source), {"min_score": 0.9}, store=store, echo=False, max_workers=1, backend="thread")
    assert higher.status == "SUCCEEDED"
    assert {t.label: t.status for t in higher.tasks}["deploy"] == "skipped"


def test_a_when_value_that_is_neither_a_literal_nor_a_parameter_is_refused_on_its_cell(tmp_path):
    source = gated(tmp_path, "min_scor")
    with pytest.raises(KaleLikeError) as refused:
        kale_like.compile(str(source))
    assert refused.value.location.cell_index == 2
    assert "'min_scor' in 'when:best_score:>=:min_scor' is neither a Python literal nor a pipeline parameter" in \
        refused.value.message
    assert refused.value.hint.startswith("did you mean when:best_score:>=:min_score?")
    assert refused.value.render().startswith(f"{source}:cell 3: ")  # numbered as JupyterLab shows cells


def test_a_quoted_name_is_the_string_literal(tmp_path):
    source = write_notebook(tmp_path / "quoted.ipynb", [
        ("min_score = 0.5", ["pipeline-parameters"]),
        ("label = 'min_score'", ["step:pick"]),
        ("print(label)", ["step:deploy", "when:label:==:'min_score'"]),
    ])
    spec = next(yaml.safe_load_all(kale_like.compile(str(source))))
    (condition,) = [task["triggerPolicy"]["condition"] for task in spec["root"]["dag"]["tasks"].values()
                    if "triggerPolicy" in task]
    assert "pipelinechannel--min_score" not in condition and "min_score" in condition


@pytest.mark.parametrize(("tag", "hint"), [
    ("retry:3", "did you mean 'retries:3'?"),
    ("retrys:3:30s", "did you mean 'retries:3:30s'?"),
    ("imprts", "did you mean 'imports'?"),
    ("limits:cpu:2", "did you mean 'limit:cpu:2'?"),
    ("steps:train", "did you mean 'step:train'?"),
])
def test_an_unknown_tag_gets_one_did_you_mean(tag, hint):
    assert unknown_tag_hint(tag).startswith(hint)


def test_a_cycle_message_names_only_the_steps_on_the_cycle(tmp_path):
    source = write_notebook(tmp_path / "cycle.ipynb", [
        ("x = 1", ["step:first"]),
        ("a = x", ["step:a", "prev:c"]),
        ("b = a", ["step:b"]),
        ("c = b", ["step:c"]),
        ("d = c", ["step:downstream"]),
    ])
    with pytest.raises(KaleLikeError) as refused:
        kale_like.compile(str(source))
    message = str(refused.value)
    assert "the steps a -> b -> c -> a depend on each other in a cycle " \
           "(b reads a from a; c reads b from b; a has prev:c)" in message
    assert "downstream" not in message and "first" not in message
    assert refused.value.location.cell_index == 1  # the cell whose prev: closes the loop


def test_compiled_files_get_the_users_umask(tmp_path):
    source = gated(tmp_path, "0.5")
    previous = os.umask(0o022)
    try:
        assert kale_like.surfaces.cli.main([str(source), "--kfp", "-o", str(tmp_path / "out.yaml"), "-q"]) == 0
    finally:
        os.umask(previous)
    for name in ("out.yaml", "out_kfp.py"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
