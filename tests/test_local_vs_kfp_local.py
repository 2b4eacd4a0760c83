"""Hand-written kfp DSL pipelines, run by kale_like and by kfp.local: where kfp.local is wrong, we are not.

The pipelines are in tests/fixtures/local/kfp_shapes.py (plain `from kfp import dsl`, lightweight
Python components) and are compiled here with `kfp.compiler.Compiler`, as their authors would.
Every component appends what it received to the file named by the `log` parameter, so both runners
are judged on the same evidence: the values, and their JSON types (`1` is not `1.0`).

The shapes are the ones measured to be wrong in kfp.local (kfp 2.17):

* nested ParallelFor whose outer loop iterates a pipeline parameter or a task output: kfp.local's
  `create_parameter_loop_iteration_task_spec` replaces every input ending in `-loop-item` with the
  inner item, so the outer item is lost ((0,0)(0,0)(1,1)(1,1)(2,2)(2,2) instead of all pairs);
* `dsl.Collected` of int outputs into a `List[int]` input: the ints arrive as floats;
* a ParallelFor over dict items (the listing-step shape kale_like compiles `d.items()` to) while a
  task output dict from outside the loop is passed into the loop: kfp.local hands the component the
  loop item in place of the outside dict.

Each shape has a fast test of kale_like's run and a slow one of kfp.local's, which asserts that
kfp.local's result differs from the right one (documenting the defect, so a kfp release that fixes
it makes the test fail and this file gets updated). For int constants and int list defaults
kfp.local is right and kale_like is not: that case is an xfail on our side.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import kale_like

TESTS = Path(__file__).resolve().parent
LOCAL = TESTS / "fixtures" / "local"

PAIRS = sorted((a, b) for a in (0, 1) for b in (0, 1, 2))
WRONG_PAIRS = sorted((b, b) for _ in (0, 1) for b in (0, 1, 2))  # what kfp.local produces: outer item lost


@pytest.fixture(scope="module")
def shapes():
    sys.path.insert(0, str(LOCAL))
    try:
        import kfp_shapes
    finally:
        sys.path.remove(str(LOCAL))
    return kfp_shapes


def compile_shape(shapes, name: str, folder: Path) -> Path:
    from kfp import compiler

    target = folder / f"{name}.yaml"
    compiler.Compiler().compile(getattr(shapes, name), str(target))
    return target


def read_notes(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


def ours(shapes, name: str, tmp_path: Path, **params) -> list[dict]:
    log = tmp_path / "ours.jsonl"
    result = kale_like.run(compile_shape(shapes, name, tmp_path), {"log": str(log), **params},
                           store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error
    return read_notes(log)


def kfp_local(shapes, name: str, tmp_path: Path, **params) -> list[dict]:
    from kfp import local

    log = tmp_path / "kfp_local.jsonl"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp_root"))
    getattr(shapes, name)(log=str(log), **params)
    return read_notes(log)


def typed_pairs(notes: list[dict]) -> list[tuple]:
    """(a, b) pairs, kept exact: a float 1.0 stays 1.0 and fails a comparison with int pairs by type."""
    return sorted((n["a"], n["b"]) for n in notes if n["what"] == "pair")


def assert_ints(pairs: list[tuple]) -> None:
    assert all(type(a) is int and type(b) is int for a, b in pairs), pairs


def plain_pairs(notes: list[dict]) -> list[tuple]:
    return sorted((int(n["a"]), int(n["b"])) for n in notes if n["what"] == "pair")


# ---------------------------------------------------------------------------
# Nested ParallelFor, outer loop over a pipeline parameter


def test_ours_nested_loop_outer_over_parameter(shapes, tmp_path):
    pairs = typed_pairs(ours(shapes, "outer_over_parameter", tmp_path, outer=[0, 1], inner=[0, 1, 2]))
    assert pairs == PAIRS
    assert_ints(pairs)


@pytest.mark.slow
def test_kfp_local_nested_loop_outer_over_parameter_loses_the_outer_item(shapes, tmp_path):
    pairs = plain_pairs(kfp_local(shapes, "outer_over_parameter", tmp_path, outer=[0, 1], inner=[0, 1, 2]))
    assert pairs != PAIRS
    assert pairs == WRONG_PAIRS


# ---------------------------------------------------------------------------
# Nested ParallelFor, outer loop over a task output (the inner list also comes from outside the outer loop)


def test_ours_nested_loop_outer_over_task_output(shapes, tmp_path):
    pairs = typed_pairs(ours(shapes, "outer_over_task_output", tmp_path))
    assert pairs == PAIRS
    assert_ints(pairs)


def test_ours_compiled_kfp_yaml_from_the_command_line(shapes, tmp_path):
    pipeline_yaml = compile_shape(shapes, "outer_over_task_output", tmp_path)
    log = tmp_path / "cli.jsonl"
    done = subprocess.run([sys.executable, "-m", "kale_like", str(pipeline_yaml), "--run", "-q", "--store",
                           str(tmp_path / "store"), "--param", f"log={log}", "--param", "n_outer=3"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    pairs = typed_pairs(read_notes(log))
    assert pairs == sorted((a, b) for a in (0, 1, 2) for b in (0, 1, 2))
    assert_ints(pairs)
    assert "SUCCEEDED" in done.stdout


@pytest.mark.slow
def test_kfp_local_nested_loop_outer_over_task_output_loses_the_outer_item(shapes, tmp_path):
    pairs = plain_pairs(kfp_local(shapes, "outer_over_task_output", tmp_path))
    assert pairs != PAIRS
    assert pairs == WRONG_PAIRS


# ---------------------------------------------------------------------------
# Collected ints into a List[int] input


def test_ours_collected_ints_arrive_as_ints(shapes, tmp_path):
    (collected,) = [n["values"] for n in ours(shapes, "collected_ints", tmp_path) if n["what"] == "collected"]
    assert collected == [1, 4, 9]
    assert [type(v) for v in collected] == [int, int, int]


@pytest.mark.slow
def test_kfp_local_collected_ints_arrive_as_floats(shapes, tmp_path):
    (collected,) = [n["values"] for n in kfp_local(shapes, "collected_ints", tmp_path) if n["what"] == "collected"]
    assert sorted(collected) == [1, 4, 9]  # equal as numbers ...
    assert {type(v) for v in collected} == {float}  # ... but floats: a `-> int` consumer would fail


# ---------------------------------------------------------------------------
# ParallelFor over dict items, with a task output dict from outside the loop passed in

CONFIG = {"lr": 0.1, "name": "base"}
REGIONS = [("eu", 0.5), ("us", 1.5)]


def test_ours_dict_items_loop_keeps_the_outside_dict(shapes, tmp_path):
    seen = ours(shapes, "dict_items_with_outside_dict", tmp_path)
    assert sorted((n["region"], n["weight"]) for n in seen) == REGIONS
    assert [n["config"] for n in seen] == [CONFIG, CONFIG]


@pytest.mark.slow
def test_kfp_local_dict_items_loop_replaces_the_outside_dict_with_the_item(shapes, tmp_path):
    seen = kfp_local(shapes, "dict_items_with_outside_dict", tmp_path)
    assert sorted((n["region"], n["weight"]) for n in seen) == REGIONS
    assert all(n["config"] != CONFIG for n in seen)
    assert sorted(json.dumps(n["config"], sort_keys=True) for n in seen) == sorted(
        json.dumps({"entry_key": region, "entry_value": weight}, sort_keys=True) for region, weight in REGIONS)


# ---------------------------------------------------------------------------
# Int constants and int list defaults: kfp.local is right here, kale_like is not

INT_CONSTANTS = [{"what": "constant", "value": 3}, {"what": "default-item", "value": 4},
                 {"what": "default-item", "value": 5}]


def _typed(notes: list[dict]) -> list[tuple]:
    return sorted((n["what"], type(n["value"]).__name__, n["value"]) for n in notes)


def test_ours_int_constants_and_int_list_defaults_stay_ints(shapes, tmp_path):
    assert _typed(ours(shapes, "int_constants", tmp_path)) == _typed(INT_CONSTANTS)


@pytest.mark.slow
def test_kfp_local_int_constants_and_int_list_defaults_stay_ints(shapes, tmp_path):
    assert _typed(kfp_local(shapes, "int_constants", tmp_path)) == _typed(INT_CONSTANTS)


# ---------------------------------------------------------------------------
# A ParallelFor with an empty body: nothing to run, so the run should succeed


def test_ours_empty_loop_body_runs_nothing(shapes, tmp_path):
    assert _typed(ours(shapes, "empty_loop_body", tmp_path)) == [("before", "int", 1)]


@pytest.mark.slow
def test_kfp_local_empty_loop_body_fails_the_run(shapes, tmp_path):
    with pytest.raises(RuntimeError, match="for-loop-2-iteration-0"):
        kfp_local(shapes, "empty_loop_body", tmp_path)
