"""Pipelines kale_like compiles mean on a KFP cluster what their Python means.

The local runner models the KFP backend's driver (kale_like/backends/local/driver.py, read from
kubeflow/pipelines `backend/src/v2/driver/resolve.go`, releases 2.14-2.17): a compiled pipeline that
would misbehave on a cluster misbehaves the same way here. tests/fixtures/local/cluster_meaning.py
holds one pipeline per shape that a naive compile gets wrong on a cluster (each cited in the
lowering pass that fixes it, kale_like/lowering/); every step notes the value and type it received.
The file run as plain Python is the oracle: the local run of the compiled IR must note the same.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from runs import python_and_local_notes

import kale_like
from kale_like.surfaces.cli import main

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

SOURCE = Path(__file__).resolve().parent / "fixtures" / "local" / "cluster_meaning.py"

CASES = [
    ("untyped_items", {}),  # items of a `-> list` result keep their types (1, "1", True, None, ...)
    ("dict_values", {}),  # .items() and .values() of a dict parameter with values of several types
    ("dict_values", {"weights": {"k": True, "n": None}}),
    ("nested_lists", {}),  # a nested pipeline's collected list, collected by a loop: a list of lists
    ("empty_loops", {}),  # loops over an empty parameter and an empty step result collect []
    ("empty_loops", {"xs": [5, 6], "n": 2}),
    ("empty_items", {}),  # a loop over an empty dict's .items() collects []
    ("empty_items", {"weights": {"a": 2, "b": 3}}),
    ("empty_nested_loops", {}),  # an empty inner loop, read inside the outer one; both may be empty
    ("empty_nested_loops", {"xs": [], "ys": [3]}),
    ("empty_nested_loops", {"xs": [], "ys": []}),
    ("empty_nested_loops", {"xs": [1, 2], "ys": [3, 4]}),
    ("rows", {}),  # an inner loop over the outer loop's untyped item, both collected
    ("rows", {"matrix": []}),
    ("rows", {"matrix": [[], [4]]}),
    ("own_list", {}),  # the loop body reads the list the loop runs over
    ("own_list", {"xs": [7]}),
    ("empty_return", {}),  # a nested pipeline returns what an empty loop collected: []
    ("empty_return", {"n": 3}),
    ("collected_into_nested", {}),  # an empty loop's collected list passed to a nested pipeline
    ("collected_into_nested", {"xs": [2, 3]}),
]


def plain_notes(pipeline: str, log: Path, params: dict) -> list[str]:
    spec = importlib.util.spec_from_file_location("_kl_plain_cluster_meaning", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    getattr(module, pipeline)(log=str(log), **params)
    return sorted(log.read_text(encoding="utf-8").splitlines()) if log.exists() else []


@pytest.mark.parametrize(("pipeline", "params"), CASES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(CASES)])
def test_local_run_notes_what_python_notes(pipeline, params, tmp_path):
    python, local = python_and_local_notes(SOURCE, pipeline, params, tmp_path)
    assert local == python


def compiled(pipeline: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{pipeline}.yaml"
    assert main([str(SOURCE), "--pipeline", pipeline, "--kfp", "-o", str(out), "--no-dsl", "-q"]) == 0
    return yaml.safe_load(out.read_text(encoding="utf-8"))


def components_reading(spec: dict, prefix: str) -> list[str]:
    """Components with an input whose name starts with `prefix`."""
    return [key for key, c in spec["components"].items()
            if any(n.startswith(prefix) for n in c.get("inputDefinitions", {}).get("parameters", {}))]


def test_untyped_items_reach_the_loop_as_text_the_step_decodes(tmp_path):
    """The loop item is declared STRING (the driver would turn 1 into "1"); the items are JSON texts
    already, and the step that reads them declares `x` as STRING and decodes it."""
    spec = compiled("untyped_items", tmp_path)
    loops = [c for key, c in spec["components"].items() if key.startswith("comp-for-loop")]
    items = [d for c in loops for n, d in c["inputDefinitions"]["parameters"].items() if n.endswith("loop-item")]
    assert items and all(d["parameterType"] == "STRING" for d in items)
    executor = json.dumps(spec["deploymentSpec"]["executors"])
    assert "json.dumps(item) for item in" in executor  # the generated step, in a component


def test_empty_loop_runs_once_with_a_filler_and_readers_are_told(tmp_path):
    """Every task of the body, and every reader of the collected list, gets the loop's has_items flag."""
    spec = compiled("empty_loops", tmp_path)
    assert sorted(components_reading(spec, "kl_run_if")) == ["comp-see-int", "comp-see-int-2"]
    assert sorted(components_reading(spec, "kl_empty_unless")) == ["comp-total", "comp-total-2"]
    roots = spec["root"]["dag"]["tasks"]
    assert sum(1 for name in roots if name.endswith("items-or-filler")) == 2


def test_exit_handler_reads_succeeded_after_a_run_served_from_the_cache(tmp_path, monkeypatch):
    """A cache hit never updates its group's ML Metadata state (driver/container.go skips the launcher,
    metadata/client.go UpdateDAGExecutionsState), so a re-run whose steps all come from the cache would
    leave the exit handler reading RUNNING; a generated uncached last step marks the group complete."""
    log = tmp_path / "run.log"
    monkeypatch.setenv("KL_EXIT_LOG", str(log))
    for _ in range(2):
        result = kale_like.run(SOURCE, {"log": str(log)}, pipeline="exit_state", store=tmp_path / "store", echo=False)
        assert result.succeeded, result.error
    notes = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [n["state"] for n in notes if n["what"] == "exit"] == [["'SUCCEEDED'", "str"]] * 2
    statuses = {t.label: t.status for t in result.tasks}
    assert statuses["work"] == statuses["see-int"] == "cached" and statuses["all-done"] == "done"


@pytest.mark.parametrize("n", [1, -1])
def test_value_chosen_by_an_if_is_read_when_its_branch_came_from_the_cache(tmp_path, n):
    """dsl.OneOf takes the first branch ML Metadata marks complete (resolve.go GetProducerTask), which only
    a step that runs does: each branch whose value is read ends with a generated uncached step."""
    expected = plain_notes("chosen_value", tmp_path / "plain.log", {"n": n})
    log = tmp_path / "run.log"
    runs = [kale_like.run(SOURCE, {"n": n, "log": str(log)}, pipeline="chosen_value", store=tmp_path / "store",
                          echo=False) for _ in range(2)]
    assert all(result.succeeded for result in runs), [result.error for result in runs]
    assert sorted(log.read_text(encoding="utf-8").splitlines()) == expected  # noted once: then a cache hit
    statuses = {t.label: t.status for t in runs[1].tasks}
    assert statuses["pick" if n > 0 else "work"] == statuses["see-int"] == "cached"  # its OneOf was resolved


def test_notebook_foreach_items_keep_their_types_and_an_empty_list_collects_nothing(tmp_path, monkeypatch):
    """`foreach:` over a variable of an earlier step: the items are whatever that step made (the driver
    would hand `1` and `True` over as text), and a later step reading a foreach step's variable gets the
    list of its values, `[]` when the list looped over is empty."""
    import nbformat

    def cell(source: str, *tags: str):
        return nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})

    note = ("import json, os\n"
            "with open(os.environ['KL_NB_LOG'], 'a') as f:\n"
            "    f.write(json.dumps([WHAT, repr(VALUE), type(VALUE).__name__]) + '\\n')\n")
    notebook = nbformat.v4.new_notebook(cells=[
        cell("xs = [1, '1', True, None, 2.5]\nempty = []", "step:load"),
        cell(note.replace("WHAT", "'item'").replace("VALUE", "x") + "y = x\n", "step:show", "foreach:x:xs"),
        cell(note.replace("WHAT", "'gathered'").replace("VALUE", "y"), "step:gather"),
        cell("z = e\n", "step:none", "foreach:e:empty"),
        cell(note.replace("WHAT", "'after-none'").replace("VALUE", "z"), "step:after_none"),
    ])
    path = tmp_path / "foreach.ipynb"
    nbformat.write(notebook, path)
    log = tmp_path / "run.log"
    monkeypatch.setenv("KL_NB_LOG", str(log))
    result = kale_like.run(path, {}, store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error
    seen = sorted(json.loads(line) for line in log.read_text(encoding="utf-8").splitlines())
    assert seen == sorted([["item", "1", "int"], ["item", "'1'", "str"], ["item", "True", "bool"],
                           ["item", "None", "NoneType"], ["item", "2.5", "float"],
                           ["gathered", "[1, '1', True, None, 2.5]", "list"], ["after-none", "[]", "list"]])


def test_a_nested_pipeline_called_in_an_empty_loop_is_told_to_stand_still(tmp_path):
    """The loop runs once on a filler item; the nested pipeline it calls gets the flag as a parameter and
    passes it to its steps, so they run none of the user's code; the reader gets []."""
    for xs in ([], [1, 2]):
        log = tmp_path / f"run-{len(xs)}.log"
        result = kale_like.run(SOURCE, {"xs": xs, "log": str(log)}, pipeline="empty_nested",
                               store=tmp_path / "store", echo=False)
        assert result.succeeded, result.error
        expected = plain_notes("empty_nested", tmp_path / f"plain-{len(xs)}.log", {"xs": xs})
        assert sorted(log.read_text(encoding="utf-8").splitlines()) == expected
    spec = compiled("empty_nested", tmp_path)
    nested = spec["components"]["comp-pairs"]
    assert nested["inputDefinitions"]["parameters"]["kl_caller_runs"] == {"defaultValue": True, "isOptional": True,
                                                                           "parameterType": "BOOLEAN"}


def test_a_collected_list_a_nested_pipeline_returns_or_receives_is_read_by_a_step_that_is_told(tmp_path, capsys):
    """A nested pipeline returning what its loop collects, or receiving a collected list, would leave the
    reader on the other side with no task to collect from when the list is empty (resolve.go
    resolveUpstreamParameters). A generated step on the collecting side reads the list and hands it on
    (lowering/nested_collected.py); it is a reader empty_loops.py can tell: no warning, and [] is read."""
    for pipeline in ("empty_return", "collected_into_nested"):
        out = tmp_path / f"{pipeline}.yaml"
        assert main([str(SOURCE), "--pipeline", pipeline, "--kfp", "-o", str(out), "--no-dsl"]) == 0
        assert "cannot make it read [] here" not in capsys.readouterr().err
    spec = compiled("empty_return", tmp_path)
    assert "kl_empty_unless__value_" in spec["components"]["comp-squares-result"]["inputDefinitions"]["parameters"]
