"""Tests for the structural KFP v2 IR validator.

Pipelines are compiled with the real kfp compiler at test time, so the
validator is checked against the IR the installed SDK actually emits.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any, List, NamedTuple

import pytest
import yaml
from kfp import compiler, dsl, kubernetes
from kfp.dsl import Dataset, Input, Model, Output

from kale_like.backends.kfp.validate import (
    IRCheckError,
    assert_valid_pipeline_spec,
    check_pipeline_spec,
)

Docs = list[dict[str, Any]]

# ---------------------------------------------------------------------------
# Components


@dsl.component(base_image="python:3.11")
def produce() -> int:
    return 1


@dsl.component(base_image="python:3.11")
def consume(x: int) -> int:
    return x


@dsl.component(base_image="python:3.11")
def show(s: str):
    print(s)


@dsl.component(base_image="python:3.11")
def make_list() -> List[int]:
    return [1, 2]


@dsl.component(base_image="python:3.11")
def total(xs: List[int]) -> int:
    return sum(int(x) for x in xs)


@dsl.component(base_image="python:3.11")
def train(x: int, model: Output[Model]):
    model.metadata["x"] = x


@dsl.component(base_image="python:3.11")
def count_models(models: Input[List[Model]]) -> int:
    return len(models)


@dsl.component(base_image="python:3.11")
def make_dataset(data: Output[Dataset]):
    data.metadata["ok"] = True


@dsl.component(base_image="python:3.11")
def use_dataset(data: Input[Dataset]):
    print(data.metadata)


@dsl.component(base_image="python:3.11")
def final_status(status: dsl.PipelineTaskFinalStatus):
    print(status.state)


# ---------------------------------------------------------------------------
# Valid pipelines covering the control-flow shapes the compiler emits


@dsl.pipeline
def linear_pipeline():
    a = produce()
    b = consume(x=a.output)
    consume(x=b.output).after(a)


@dsl.pipeline
def if_elif_else_pipeline(flag: str = "a"):
    n = produce()
    with dsl.If(n.output > 5):
        consume(x=1)
    with dsl.Elif(n.output == 3):
        consume(x=2)
    with dsl.Else():
        consume(x=3)
    with dsl.If(flag == "a"):
        show(s=flag)


@dsl.pipeline
def parallel_for_pipeline(xs: List[int] = [1, 2]):
    with dsl.ParallelFor([1, 2, 3]) as i:
        consume(x=i)
    with dsl.ParallelFor(xs) as j:
        consume(x=j)
    lst = make_list()
    with dsl.ParallelFor(lst.output, parallelism=2) as k:
        with dsl.If(k >= 2):
            consume(x=k)


@dsl.pipeline
def nested_parallel_for_pipeline(xs: List[int] = [0, 1]):
    outer_list = make_list()
    with dsl.ParallelFor(xs) as i:
        with dsl.ParallelFor(outer_list.output) as j:
            consume(x=i)
            consume(x=j)


@dsl.pipeline
def collected_pipeline() -> List[int]:
    with dsl.ParallelFor([1, 2]) as i:
        c = consume(x=i)
        t = train(x=i)
    total(xs=dsl.Collected(c.output))
    count_models(models=dsl.Collected(t.outputs["model"]))
    return dsl.Collected(c.output)


@dsl.pipeline
def one_of_inner(x: int) -> int:
    with dsl.If(x > 1):
        a = consume(x=x)
    with dsl.Else():
        b = consume(x=2)
    return dsl.OneOf(a.output, b.output)


@dsl.pipeline
def dataset_inner(ds: Input[List[Dataset]]):
    with dsl.ParallelFor(ds) as d:
        use_dataset(data=d)


@dsl.pipeline
def nested_pipeline_pipeline(n: int = 3):
    inner = one_of_inner(x=n)
    with dsl.If(inner.output > 5):
        consume(x=inner.output)
    with dsl.ParallelFor([1, 2]) as _:
        made = make_dataset()
    dataset_inner(ds=dsl.Collected(made.outputs["data"]))


@dsl.pipeline
def exit_handler_pipeline(items: List[dict] = [{"a": "x"}]):
    with dsl.ExitHandler(final_status()):
        a = produce()
        consume(x=a.output)
        with dsl.ParallelFor(items) as item:
            show(s=item.a)


@dsl.pipeline
def task_settings_pipeline(cpu: str = "1", n: int = 1):
    a = produce().set_caching_options(False).set_retry(3, "30s", 2.0, "600s")
    b = consume(x=n).set_cpu_limit(cpu).set_memory_limit(cpu)
    total(xs=[a.output, b.output]).set_display_name("Total")
    kubernetes.use_secret_as_env(a, secret_name="sec", secret_key_to_env={"k": "K"})


@dsl.pipeline
def dict_items_in_exit_handler_pipeline():
    with dsl.ExitHandler(final_status()):
        with dsl.ParallelFor([{"a": "x", "b": "y"}, {"a": "z", "b": "w"}]) as item:
            show(s=item.a)


# ---------------------------------------------------------------------------
# Helpers


def _compile(pipeline: Any, tmp_path: Path) -> str:
    """Compiles a pipeline to a file, the way the tool does, and reads it back."""
    path = tmp_path / f"{pipeline.name}.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    return path.read_text()


def _load(text: str) -> Docs:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def _dump(docs: Docs) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def _root_tasks(docs: Docs) -> dict[str, Any]:
    return docs[0]["root"]["dag"]["tasks"]


def _component(docs: Docs, name: str) -> dict[str, Any]:
    return docs[0]["components"][name]


def _task_param(docs: Docs, task: str, key: str) -> dict[str, Any]:
    return _root_tasks(docs)[task]["inputs"]["parameters"][key]


# ---------------------------------------------------------------------------
# Compiled pipelines pass


@pytest.mark.parametrize(
    "pipeline",
    [
        pytest.param(linear_pipeline, id="linear"),
        pytest.param(if_elif_else_pipeline, id="if-elif-else"),
        pytest.param(parallel_for_pipeline, id="parallel-for-static-param-output"),
        pytest.param(nested_parallel_for_pipeline, id="nested-parallel-for"),
        pytest.param(collected_pipeline, id="collected-parameter-and-artifact"),
        pytest.param(nested_pipeline_pipeline, id="nested-pipeline-oneof-artifact-iterator"),
        pytest.param(exit_handler_pipeline, id="exit-handler-dict-param-items"),
        pytest.param(task_settings_pipeline, id="task-settings-and-secret"),
    ],
)
def test_compiled_pipeline_has_no_problems(pipeline: Any, tmp_path: Path) -> None:
    text = _compile(pipeline, tmp_path)

    assert check_pipeline_spec(text) == []
    assert_valid_pipeline_spec(text, source="ok.yaml")


def test_task_settings_pipeline_emits_platform_doc_and_injected_inputs(tmp_path: Path) -> None:
    docs = _load(_compile(task_settings_pipeline, tmp_path))

    assert "platforms" in docs[1]
    consume_inputs = _root_tasks(docs)["consume"]["inputs"]["parameters"]
    assert {"cpu_limit", "pipelinechannel--cpu"} <= consume_inputs.keys()


def test_dict_items_in_exit_handler_compiler_bug_is_flagged(tmp_path: Path) -> None:
    """kubeflow/pipelines#13273: the exit-handler task reads a missing root input."""
    problems = check_pipeline_spec(_compile(dict_items_in_exit_handler_pipeline, tmp_path))

    assert problems == [
        "root/exit-handler-1: input 'pipelinechannel--loop-item-param-2-subvar-a'"
        " <- componentInputParameter 'loop-item-param-2' not in root inputDefinitions"
    ]


# ---------------------------------------------------------------------------
# Hand-broken variants are flagged


class Breakage(NamedTuple):
    pipeline: Any
    mutate: Callable[[Docs], None]
    expected: str


def _delete_component(docs: Docs) -> None:
    del docs[0]["components"]["comp-consume"]


def _rename_executor(docs: Docs) -> None:
    executors = docs[0]["deploymentSpec"]["executors"]
    executors["exec-renamed"] = executors.pop("exec-consume")


def _bad_producer_task(docs: Docs) -> None:
    _task_param(docs, "consume", "x")["taskOutputParameter"]["producerTask"] = "ghost"


def _bad_output_key(docs: Docs) -> None:
    _task_param(docs, "consume", "x")["taskOutputParameter"]["outputParameterKey"] = "nope"


def _delete_required_input(docs: Docs) -> None:
    del _root_tasks(docs)["consume"]["inputs"]["parameters"]["x"]


def _inject_cycle(docs: Docs) -> None:
    _root_tasks(docs)["produce"]["dependentTasks"] = ["consume-2"]


def _unknown_field(docs: Docs) -> None:
    _root_tasks(docs)["consume"]["unknownField"] = 1


def _bad_platform_executor(docs: Docs) -> None:
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    executors["exec-ghost"] = executors.pop("exec-produce")


def _unknown_platform_field(docs: Docs) -> None:
    docs[1]["platforms"]["kubernetes"]["bogus"] = True


def _ghost_dependent_task(docs: Docs) -> None:
    _root_tasks(docs)["consume"]["dependentTasks"] = ["ghost"]


def _undeclared_input(docs: Docs) -> None:
    params = _root_tasks(docs)["consume"]["inputs"]["parameters"]
    params["extra"] = {"runtimeValue": {"constant": 1}}


def _unknown_component_input(docs: Docs) -> None:
    _task_param(docs, "consume", "x").clear()
    _task_param(docs, "consume", "x")["componentInputParameter"] = "ghost"


def _condition_reads_missing_input(docs: Docs) -> None:
    branches = _component(docs, "comp-condition-branches-1")["dag"]["tasks"]
    branches["condition-2"]["triggerPolicy"]["condition"] = "inputs.parameter_values['ghost'] > 5"


def _iterator_items_not_input(docs: Docs) -> None:
    loop = _root_tasks(docs)["for-loop-3"]
    loop["parameterIterator"]["items"]["inputParameter"] = "pipelinechannel--ghost"


def _bad_raw_items(docs: Docs) -> None:
    _root_tasks(docs)["for-loop-2"]["parameterIterator"]["items"]["raw"] = "{not json"


def _loop_dag_without_tasks(docs: Docs) -> None:
    # what kfp leaves behind when it writes a group's tasks into another pipeline's DAG of that name
    docs[0]["components"]["comp-for-loop-2"]["dag"]["tasks"] = {}


def _bad_collected_artifact_key(docs: Docs) -> None:
    models = _root_tasks(docs)["count-models"]["inputs"]["artifacts"]["models"]
    models["taskOutputArtifact"]["outputArtifactKey"] = "nope"


def _bad_dag_output_selector(docs: Docs) -> None:
    outputs = _component(docs, "comp-condition-branches-1")["dag"]["outputs"]["parameters"]
    oneof = outputs["pipelinechannel--condition-branches-1-oneof-1"]["valueFromOneof"]
    oneof["parameterSelectors"][1]["producerSubtask"] = "ghost"


def _bad_dag_artifact_selector(docs: Docs) -> None:
    outputs = _component(docs, "comp-for-loop-3")["dag"]["outputs"]["artifacts"]
    outputs["pipelinechannel--make-dataset-data"]["artifactSelectors"][0]["outputArtifactKey"] = (
        "nope"
    )


def _bad_artifact_iterator(docs: Docs) -> None:
    loop = _component(docs, "comp-dataset-inner")["dag"]["tasks"]["for-loop-1"]
    loop["artifactIterator"]["items"]["inputArtifact"] = "ghost"


def _unknown_component_artifact(docs: Docs) -> None:
    loop = _component(docs, "comp-dataset-inner")["dag"]["tasks"]["for-loop-1"]
    loop["inputs"]["artifacts"]["pipelinechannel--ds"]["componentInputArtifact"] = "ghost"


def _bad_final_status_producer(docs: Docs) -> None:
    status = _task_param(docs, "final-status", "status")
    status["taskFinalStatus"]["producerTask"] = "ghost"


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(
            Breakage(linear_pipeline, _delete_component,
                     "root/consume: componentRef 'comp-consume' not in components"),
            id="missing-component",
        ),
        pytest.param(
            Breakage(linear_pipeline, _rename_executor,
                     "comp-consume: executorLabel 'exec-consume' not in deploymentSpec"
                     ".executors (used by root/consume)"),
            id="renamed-executor",
        ),
        pytest.param(
            Breakage(linear_pipeline, _bad_producer_task,
                     "root/consume: input 'x' <- producerTask 'ghost' not in root"),
            id="bad-producer-task",
        ),
        pytest.param(
            Breakage(linear_pipeline, _bad_output_key,
                     "root/consume: input 'x' <- 'produce' output 'nope' not declared"
                     " by comp-produce"),
            id="bad-output-key",
        ),
        pytest.param(
            Breakage(linear_pipeline, _delete_required_input,
                     "root/consume: required input 'x' of comp-consume not supplied"),
            id="deleted-required-input",
        ),
        pytest.param(
            Breakage(linear_pipeline, _inject_cycle,
                     "root/consume: dependency cycle consume -> consume-2 -> produce -> consume"),
            id="injected-cycle",
        ),
        pytest.param(
            Breakage(linear_pipeline, _unknown_field,
                     'no field named "unknownField" at "PipelineSpec.root.dag.tasks[consume]"'),
            id="unknown-field",
        ),
        pytest.param(
            Breakage(linear_pipeline, _ghost_dependent_task,
                     "root/consume: dependentTask 'ghost' not in root"),
            id="ghost-dependent-task",
        ),
        pytest.param(
            Breakage(linear_pipeline, _undeclared_input,
                     "root/consume: input 'extra' not declared by comp-consume"),
            id="undeclared-input",
        ),
        pytest.param(
            Breakage(linear_pipeline, _unknown_component_input,
                     "root/consume: input 'x' <- componentInputParameter 'ghost' not in"
                     " root inputDefinitions"),
            id="unknown-component-input",
        ),
        pytest.param(
            Breakage(task_settings_pipeline, _bad_platform_executor,
                     "platforms.kubernetes: executor 'exec-ghost' not in"
                     " deploymentSpec.executors"),
            id="bad-platform-executor",
        ),
        pytest.param(
            Breakage(task_settings_pipeline, _unknown_platform_field,
                     'no field named "bogus" at "PlatformSpec.platforms[kubernetes]"'),
            id="unknown-platform-field",
        ),
        pytest.param(
            Breakage(if_elif_else_pipeline, _condition_reads_missing_input,
                     "comp-condition-branches-1/condition-2: triggerPolicy condition"
                     " references 'ghost', not a task input"),
            id="condition-reads-missing-input",
        ),
        pytest.param(
            Breakage(parallel_for_pipeline, _iterator_items_not_input,
                     "root/for-loop-3: parameterIterator items 'pipelinechannel--ghost'"
                     " is not a task input"),
            id="iterator-items-not-input",
        ),
        pytest.param(
            Breakage(parallel_for_pipeline, _bad_raw_items,
                     "root/for-loop-2: parameterIterator raw items are not valid JSON"),
            id="bad-raw-items",
        ),
        pytest.param(
            Breakage(parallel_for_pipeline, _loop_dag_without_tasks,
                     "comp-for-loop-2: neither an executor nor a DAG with tasks (used by root/for-loop-2)"),
            id="loop-dag-without-tasks",
        ),
        pytest.param(
            Breakage(collected_pipeline, _bad_collected_artifact_key,
                     "root/count-models: input 'models' <- 'for-loop-2' output 'nope'"
                     " not declared by comp-for-loop-2"),
            id="bad-collected-artifact-key",
        ),
        pytest.param(
            Breakage(nested_pipeline_pipeline, _bad_dag_output_selector,
                     "comp-condition-branches-1: output"
                     " 'pipelinechannel--condition-branches-1-oneof-1' <- producerSubtask"
                     " 'ghost' not in comp-condition-branches-1"),
            id="bad-oneof-output-selector",
        ),
        pytest.param(
            Breakage(nested_pipeline_pipeline, _bad_dag_artifact_selector,
                     "comp-for-loop-3: output 'pipelinechannel--make-dataset-data' <-"
                     " 'make-dataset' output 'nope' not declared by comp-make-dataset"),
            id="bad-dag-artifact-selector",
        ),
        pytest.param(
            Breakage(nested_pipeline_pipeline, _bad_artifact_iterator,
                     "comp-dataset-inner/for-loop-1: artifactIterator items 'ghost' is"
                     " not a task input"),
            id="bad-artifact-iterator",
        ),
        pytest.param(
            Breakage(nested_pipeline_pipeline, _unknown_component_artifact,
                     "comp-dataset-inner/for-loop-1: input 'pipelinechannel--ds' <-"
                     " componentInputArtifact 'ghost' not in comp-dataset-inner"
                     " inputDefinitions"),
            id="unknown-component-artifact",
        ),
        pytest.param(
            Breakage(exit_handler_pipeline, _bad_final_status_producer,
                     "root/final-status: input 'status' <- taskFinalStatus producerTask"
                     " 'ghost' not in root"),
            id="bad-final-status-producer",
        ),
    ],
)
def test_broken_variant_is_flagged(breakage: Breakage, tmp_path: Path) -> None:
    docs = _load(_compile(breakage.pipeline, tmp_path))
    breakage.mutate(docs)

    problems = check_pipeline_spec(_dump(docs))

    assert any(breakage.expected in problem for problem in problems), problems


def test_injected_channel_input_is_not_flagged(tmp_path: Path) -> None:
    docs = _load(_compile(linear_pipeline, tmp_path))
    params = _root_tasks(docs)["consume"]["inputs"]["parameters"]
    params["pipelinechannel--extra"] = {"runtimeValue": {"constant": 1}}
    params["cpu_limit"] = {"runtimeValue": {"constant": "{{$.inputs.parameters['p']}}"}}

    assert check_pipeline_spec(_dump(docs)) == []


# ---------------------------------------------------------------------------
# Document-level problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("root: [unclosed", "yaml: ", id="yaml-syntax-error"),
        pytest.param("", "yaml: no pipeline document", id="empty"),
        pytest.param("- a\n- b\n", "yaml: document 0 is not a mapping", id="not-a-mapping"),
        pytest.param("a: 1\n---\nb: 1\n---\nc: 1\n", "expected at most 2 documents",
                     id="three-documents"),
        pytest.param("pipelineInfo: {name: p}\n---\nfoo: 1\n",
                     "PlatformSpec: document 1 has no 'platforms' key",
                     id="second-doc-not-platforms"),
        pytest.param("pipelineInfo: {name: p}\n", "root: no dag", id="no-root-dag"),
    ],
)
def test_document_level_problem_is_reported(text: str, expected: str) -> None:
    problems = check_pipeline_spec(text)

    assert any(expected in problem for problem in problems), problems


# ---------------------------------------------------------------------------
# Error type


def test_assert_raises_with_all_problems_sorted(tmp_path: Path) -> None:
    docs = _load(_compile(linear_pipeline, tmp_path))
    _ghost_dependent_task(docs)
    _delete_component(docs)

    with pytest.raises(IRCheckError) as excinfo:
        assert_valid_pipeline_spec(_dump(docs), source="p.yaml")

    err = excinfo.value
    assert isinstance(err, ValueError)
    assert err.problems == sorted(err.problems) and len(err.problems) >= 2
    assert str(err).splitlines() == [f"p.yaml: {problem}" for problem in err.problems]


def test_check_returns_sorted_unique_problems(tmp_path: Path) -> None:
    docs = _load(_compile(linear_pipeline, tmp_path))
    _rename_executor(docs)
    _ghost_dependent_task(docs)

    problems = check_pipeline_spec(_dump(docs))

    assert problems == sorted(set(problems))
    assert len(problems) == 2
