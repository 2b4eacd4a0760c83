"""The local runner against the KFP backend's driver: what a task sees, or how it fails, on a cluster.

Each pipeline under tests/fixtures/conformance/ is plain kfp DSL, compiled here by the kfp SDK's own
compiler, and run by kale_like's local runner for a KFP server version. The expected outcome is what
the backend's Go driver does with that IR (kubeflow/pipelines, `backend/src/v2/driver/`, read at
tags 2.14.0-2.17.0); each test names the file and function, and the tag where behaviour changes.
Where the cluster fails a task, the local task fails with the driver's own error text.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from kale_like.backends.local import driver
from kale_like.backends.local.ir import PipelineIR
from kale_like.backends.local.run import RunConfig, RunResult, run_pipeline
from kale_like.kfp_server import DEFAULT, ServerVersion

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "conformance"
_COMPILED: dict[tuple[str, str], PipelineIR] = {}


def compiled(module: str, pipeline: str, tmp_path_factory) -> PipelineIR:
    """A fixture pipeline compiled by `kfp.compiler.Compiler` (once per session)."""
    key = (module, pipeline)
    if key not in _COMPILED:
        from kfp import compiler

        spec = importlib.util.spec_from_file_location(f"_conformance_{module}", FIXTURES / f"{module}.py")
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        target = tmp_path_factory.mktemp("conformance") / f"{module}-{pipeline}.yaml"
        compiler.Compiler().compile(getattr(loaded, pipeline), str(target))
        _COMPILED[key] = PipelineIR.from_file(target)
    return _COMPILED[key]


@pytest.fixture
def run(tmp_path, tmp_path_factory):
    """`run(module, pipeline, version="2.14", cache=False, **arguments) -> RunResult` (thread backend)."""

    def run_(module: str, pipeline: str, version: str = "2.14", cache: bool = False, store: str = "store",
             observer=None, **arguments) -> RunResult:
        ir = compiled(module, pipeline, tmp_path_factory)
        config = RunConfig(store=tmp_path / store, backend="thread", echo=False, cache=cache,
                           kfp_version=ServerVersion.parse(version))
        return run_pipeline(ir, arguments, config, observer)

    return run_


def output(result: RunResult, label: str):
    return result.task(label).outputs["parameters"]["Output"]


def failed(result: RunResult) -> dict[str, str]:
    """label -> error of the tasks that failed."""
    return {t.label: t.error for t in result.tasks if t.status == "failed"}


# ---------------------------------------------------------------------------
# 1. Parameter typing: driver/resolve.go resolveInputs, handleParamTypeValidationAndConversion (2.14-2.17)


def test_untyped_loop_items_reach_a_str_input_as_go_writes_them(run):
    # The kfp SDK declares the item of a `-> list` loop STRING in the for-loop DAG, so the iteration
    # driver converts every item with metadata/converter.go PbValueToText: numbers by
    # strconv.FormatFloat('f', -1) (no exponent), booleans true/false, null "", lists and dicts with
    # json.Marshal of the protobuf value (protojson: sorted keys, JS-style exponents, compacted and
    # HTML-escaped by encoding/json).
    result = run("typing_rules", "untyped_loop_into_str")
    assert result.succeeded, result.error
    seen = [output(result, f"show-str[{i}]") for i in range(8)]
    assert seen == ["1", "2.5", "true", "", "1000000000000000000000", "0.0000001",
                    '[1,2.5,1e+21,1e-7,"a\\u2028b"]', '{"a":"\\u003c\\u0026\\u003e","b":1}']


def test_untyped_loop_item_into_an_int_input_fails_with_the_drivers_message(run):
    # A STRING value into a NUMBER_INTEGER input: the driver never parses text ("type mismatch").
    result = run("typing_rules", "untyped_loop_into_int")
    assert not result.succeeded
    errors = failed(result)
    assert set(errors) == {"show-int[0]", "show-int[1]"}
    message = errors["show-int[0]"]
    assert 'input parameter "x" type mismatch: expect NUMBER_INTEGER, got string' in message
    assert "on a KFP 2.14 cluster" in message
    assert "List[int]" in message  # how to change the pipeline


def test_typed_loop_item_reaches_an_int_input_as_a_number(run):
    # `-> List[int]`: the SDK declares the item NUMBER_INTEGER, the number passes the check unchanged.
    result = run("typing_rules", "typed_loop_into_int")
    assert result.succeeded, result.error
    assert [output(result, f"show-int[{i}]") for i in range(2)] == [1, 2]


def test_raw_loop_items_keep_their_type(run):
    # A literal list: the SDK declares the item by its first element (NUMBER_INTEGER here); the loop
    # driver adds the raw list as the item input (driver/dag.go DAG, ItemsSpec_Raw).
    result = run("typing_rules", "raw_loop_into_int")
    assert result.succeeded, result.error
    assert [output(result, f"show-int[{i}]") for i in range(2)] == [1, 2]


def test_a_nested_pipelines_dag_driver_checks_its_inputs_too(run):
    # resolveInputs runs for DAG drivers as for container drivers: the nested pipeline's task fails,
    # and nothing inside it runs.
    result = run("typing_rules", "untyped_loop_into_nested_int")
    assert not result.succeeded
    errors = failed(result)
    assert set(errors) == {"inner-int[0]", "inner-int[1]"}
    assert 'input parameter "x" type mismatch: expect NUMBER_INTEGER, got string' in errors["inner-int[0]"]
    assert not any(t.label.startswith("inner-int/show-int") and t.status == "done" for t in result.tasks)
    typed = run("typing_rules", "typed_loop_into_nested_int", store="typed")
    assert typed.succeeded, typed.error
    assert [output(typed, f"inner-int/show-int[{i}]") for i in range(2)] == [1, 2]


def test_a_driver_failure_is_not_retried(run):
    # argocompiler/container.go puts the retry strategy on the executor pod (system-container-impl),
    # not on the driver: a type mismatch fails once, whatever set_retry says.
    states: list[tuple[str, str]] = []
    result = run("typing_rules", "untyped_loop_into_int_with_retries",
                 observer=lambda event: states.append((event.label, event.status)))
    assert "type mismatch: expect NUMBER_INTEGER, got string" in result.task("show-int[0]").error
    assert [s for label, s in states if label == "show-int[0]"] == ["pending", "failed"]


def test_pb_value_to_text_formats_numbers_as_go_does():
    # metadata/converter.go PbValueToText: a number alone with strconv.FormatFloat(v, 'f', -1, 64);
    # inside a list protobuf-go's JSON float (exponent below 1e-6 and from 1e21).
    assert driver.pb_value_to_text(1e21) == "1000000000000000000000"
    assert driver.pb_value_to_text(1e-7) == "0.0000001"
    assert driver.pb_value_to_text(2.0) == "2"
    assert driver.pb_value_to_text(-0.5) == "-0.5"
    assert driver.pb_value_to_text(False) == "false"
    assert driver.pb_value_to_text([1e21, 1e20, 1e-6, 1e-7, 1.5e300]) == \
        "[1e+21,100000000000000000000,0.000001,1e-7,1.5e+300]"
    assert driver.pb_value_to_text({"b": [None, True], "a": {"d": "x\n", "c": 1}}) == \
        '{"a":{"c":1,"d":"x\\n"},"b":[null,true]}'


@pytest.mark.parametrize("version, refused", [("2.15", False), ("2.16", True), ("2.17", True)])
def test_literal_inputs_are_checked_from_2_16(version, refused):
    # 2.16.0 added common/util/validate_literal.go ValidateLiteralParameter to resolveInputs (the kfp
    # SDK of this checkout writes no `literals` yet, so the rule is exercised on the definitions).
    definitions = {"mode": {"parameterType": "STRING", "literals": ["fast", "slow"]}}
    check = lambda: driver.check_literals(definitions, {"mode": "medium"}, ServerVersion.parse(version))  # noqa: E731
    if refused:
        with pytest.raises(driver.DriverError, match='input parameter "mode" value .* does not match any of the'):
            check()
    else:
        check()
    driver.check_literals(definitions, {"mode": "fast"}, ServerVersion.parse(version))


# ---------------------------------------------------------------------------
# 2. Iteration inputs: driver/resolve.go resolveInputs, iteration driver
#    (`delete(inputs.ParameterValues, itemsInput)`), resolveInputParameter (2.14-2.17)


def test_a_task_in_the_loop_reading_the_loops_own_list_fails(run):
    result = run("loops", "body_reads_the_loop_list")
    assert not result.succeeded
    message = failed(result)["length[0]"]
    assert "parent DAG does not have input parameter pipelinechannel--make-list-Output" in message
    assert "pass the list into the loop body as another parameter" in message


def test_a_task_in_the_loop_reading_another_list_runs(run):
    result = run("loops", "body_reads_a_pipeline_list")
    assert result.succeeded, result.error
    assert [output(result, f"length[{i}]") for i in range(2)] == [2, 3]


# ---------------------------------------------------------------------------
# 3./4. Collected: driver/resolve.go resolveUpstreamParameters, CollectInputs (2.14-2.17)


def test_collected_over_nested_loops_is_one_flat_list_in_iteration_order(run):
    result = run("loops", "nested_loops_collected")
    assert result.succeeded, result.error
    assert output(result, "gather") == [10, 20, 30, 20, 40, 60]


def test_collected_through_a_nested_pipeline_in_a_loop_is_flat(run):
    # CollectInputs walks breadth-first through any DAG below the loop, appending container outputs.
    result = run("loops", "nested_pipeline_collected")
    assert result.succeeded, result.error
    assert output(result, "gather") == [100, 200, 1000, 2000]


def test_collected_over_an_empty_loop_fails_the_consumer_not_the_loop(run):
    # iteration_count 0: resolveUpstreamParameters follows the loop DAG like a plain DAG, into a
    # sub-task that does not exist ("subTaskName, ..., not in tasks").
    result = run("loops", "empty_loop_collected", n=0)
    assert not result.succeeded
    errors = failed(result)
    assert list(errors) == ["gather"]
    assert "subTaskName, times, not in tasks" in errors["gather"]
    assert "ran no iterations" in errors["gather"]
    assert run("loops", "empty_loop_collected", store="two", n=2).succeeded


def test_an_empty_loop_nobody_reads_succeeds(run):
    result = run("loops", "empty_loop_alone", n=0)
    assert result.succeeded, result.error
    assert output(result, "gather") == [1]


# ---------------------------------------------------------------------------
# 5. OneOf: driver/resolve.go GetProducerTask; metadata/client.go UpdateDAGExecutionsState;
#    driver/container.go (cache path publishes without a DAG state update)


@pytest.mark.parametrize("pick, expected", [("a", "from a"), ("b", "from b")])
def test_parameter_oneof_takes_the_branch_that_ran(run, pick, expected):
    result = run("branches", "parameter_one_of", pick=pick)
    assert result.succeeded, result.error
    assert output(result, "say-3") == expected


@pytest.mark.parametrize("version", ["2.14", "2.17"])
def test_parameter_oneof_after_a_cached_branch_fails(run, version):
    # The branch's only step is a cache hit: the container driver publishes it CACHED but does not
    # update the branch DAG's state, which stays RUNNING; GetProducerTask finds no COMPLETE branch.
    first = run("branches", "parameter_one_of", version=version, cache=True, pick="a")
    assert first.succeeded, first.error
    again = run("branches", "parameter_one_of", version=version, cache=True, pick="a")
    assert again.task("say").status == "cached"
    message = failed(again)["say-3"]
    assert "processing OneOf: No successful task found" in message
    assert "state in ML Metadata is RUNNING" in message


@pytest.mark.parametrize("version, ok", [("2.14", False), ("2.16", False), ("2.17", True)])
def test_artifact_oneof_before_2_17_takes_the_last_branch(run, version, ok):
    # Before 2.17.0 GetProducerTask takes an artifact OneOf's last selector whatever ran
    # (kubeflow/pipelines#13436); 2.17.0 picks the COMPLETE branch like parameters (#13437).
    result = run("branches", "artifact_one_of", version=version, pick="a")
    if ok:
        assert result.succeeded, result.error
        assert output(result, "read") == "from a"
    else:
        assert list(failed(result)) == ["read"]
        assert "subTaskName, write-2, not in tasks" in failed(result)["read"]
        assert "#13436" in failed(result)["read"]


@pytest.mark.parametrize("version", ["2.14", "2.16", "2.17"])
def test_artifact_oneof_when_the_last_branch_ran(run, version):
    result = run("branches", "artifact_one_of", version=version, pick="b")
    assert result.succeeded, result.error
    assert output(result, "read") == "from b"


@pytest.mark.parametrize("version, ok", [("2.14", False), ("2.16", False), ("2.17", True)])
def test_oneof_through_a_nested_pipeline_needs_2_17(run, version, ok):
    # The branch holds a nested pipeline: its DAG is updated by its step, but before 2.17.0 nothing
    # propagates to the branch DAG (UpdateDAGExecutionsState, #13322), which stays RUNNING.
    result = run("branches", "one_of_through_nested_pipeline", version=version, pick="a")
    if ok:
        assert result.succeeded, result.error
        assert output(result, "say-2") == "nested a"
    else:
        assert list(failed(result)) == ["say-2"]
        assert "processing OneOf: No successful task found" in failed(result)["say-2"]
        assert "kubeflow/pipelines#13322" in failed(result)["say-2"]
    direct = run("branches", "one_of_through_nested_pipeline", version=version, store="direct", pick="b")
    assert direct.succeeded, direct.error
    assert output(direct, "say-2") == "direct b"


# ---------------------------------------------------------------------------
# 6. Exit handler: driver/resolve.go resolveInputParameter, case TaskFinalStatus (2.14-2.17)


def _status(result: RunResult) -> dict:
    return json.loads(output(result, "report"))


def test_exit_handler_sees_complete_after_success(run):
    result = run("branches", "exit_handler", fail=False)
    assert result.succeeded, result.error
    status = _status(result)
    assert status["state"] == "COMPLETE"  # the ML Metadata state, not the SDK's SUCCEEDED
    assert status["task"] == "exit-handler-1"
    assert status["job"].startswith("exit-handler-")
    assert status["code"] is None and status["message"] is None  # the driver sends an empty error


def test_exit_handler_sees_failed_after_a_failure(run):
    result = run("branches", "exit_handler", fail=True)
    assert not result.succeeded
    status = _status(result)
    assert status["state"] == "FAILED"
    assert status["message"] is None  # no error message reaches the exit handler on a cluster


def test_exit_handler_after_a_fully_cached_body_sees_running(run):
    # The body's only step is a cache hit: no launcher updates the exit-handler DAG, still RUNNING.
    run("branches", "exit_handler", cache=True, fail=False)
    again = run("branches", "exit_handler", cache=True, fail=False)
    assert again.task("fail-if").status == "cached"
    assert _status(again)["state"] == "RUNNING"


@pytest.mark.parametrize("version, state", [("2.14", "RUNNING"), ("2.16", "RUNNING"), ("2.17", "COMPLETE")])
def test_exit_handler_around_only_a_nested_pipeline(run, version, state):
    # The exit-handler DAG's only task is a nested pipeline: its step updates the nested DAG, and only
    # from 2.17.0 does that state reach the exit-handler DAG (metadata/client.go UpdateDAGExecutionsState).
    result = run("branches", "exit_handler_around_a_nested_pipeline", version=version)
    assert result.succeeded, result.error
    assert _status(result)["state"] == state


# ---------------------------------------------------------------------------
# The version


def test_a_run_targets_the_oldest_supported_server_by_default():
    assert RunConfig().kfp_version == DEFAULT == ServerVersion(2, 14)
