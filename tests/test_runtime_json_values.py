"""A step's dict or list parameter output that JSON would change fails the step, saying so.

KFP hands a step's typed output (`-> dict`, `-> list`) to the next step as JSON (the executor writes
it with json.dumps; kubeflow/pipelines `backend/src/v2/driver/resolve.go` reads it back as a
`structpb.Value`): `{1: "one"}` would reach the reader as `{"1": "one"}`, silently, on a cluster.
The step runtime (the same code locally and on a cluster) fails the producing step instead, naming
the step, the output and the two fixes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import kale_like
from kale_like.runtime.step_runtime import _kl_run_step

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "values"


@pytest.mark.parametrize(("code", "type_name", "said"), [
    ("d = {1: 'one'}", "dict", "its key 1 (int) would arrive as a str"),
    ("d = {'a': {(1, 2): 3}}", "dict", "its key (1, 2) (tuple)"),
    ("d = [{'a': 1}, {True: 2}]", "list", "its key True (bool)"),
    ("d = {'a': {1, 2}}", "dict", "it holds a set, which JSON cannot hold"),
])
def test_a_typed_output_json_would_change_fails_the_step(code, type_name, said):
    with pytest.raises(TypeError) as failure:
        _kl_run_step("make", [("cell", code + "\n")], result=[("d", type_name)])
    message = str(failure.value)
    assert said in message
    assert "step 'make'" in message and "'d'" in message
    assert f"remove the step's `-> {type_name}` annotation" in message and "str keys" in message


@pytest.mark.parametrize(("code", "type_name", "expected"), [
    ("d = {'a': [1, None, 2.5, True]}", "dict", {"a": [1, None, 2.5, True]}),
    ("d = [(1, 2), 'x']", "list", [(1, 2), "x"]),  # tuples arrive as lists: JSON's own list, accepted
    ("d = {1: 'one'}", None, {1: "one"}),  # untyped: pickled, unchanged
])
def test_json_values_pass(code, type_name, expected):
    assert _kl_run_step("make", [("cell", code + "\n")], result=[("d", type_name)]) == expected


def test_the_run_fails_the_producing_step_and_the_untyped_value_keeps_its_keys(tmp_path):
    source = FIXTURES / "int_keys.py"
    failed = kale_like.run(source, pipeline="main", store=tmp_path / "store", echo=False)
    assert not failed.succeeded
    assert "step 'make'" in failed.error and "its key 1 (int) would arrive as a str" in failed.error
    assert failed.task("make").status == "failed"

    untyped = kale_like.run(source, pipeline="untyped", store=tmp_path / "store", echo=False)
    assert untyped.succeeded, untyped.error
    assert untyped.outputs == {"Output": "{1: 'one'}"}
