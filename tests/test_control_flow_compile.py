"""Control flow in `@pipeline` functions compiles to the KFP v2 IR constructs it stands for.

Each fixture in fixtures/pipelines/ is one construct written as plain Python (loops, Collected,
if/elif/else, OneOf, nested pipelines; and Kale 0.7's four SDK loop examples). Every test compiles
a fixture in-process through the CLI entry point (`kale_like.surfaces.cli.main`), parses the YAML
and asserts the IR's shape: the iterator and its item source, the parallelism limit, the CEL of
each `triggerPolicy.condition`, the wiring of Collected and OneOf outputs and nested DAGs. Every
compiled file also passes `check_pipeline_spec`.

The tests marked slow run a few fixtures with KFP's local runner and compare what the steps saw
with what the same pipeline function does when called as plain Python (the SDK decorators return
the functions, so `main(...)` runs the steps in this process). Shapes are chosen where kfp.local
is right (no nested loops over channels).

`bug_*.py` fixtures are shapes where kale_like is wrong today; their tests are strict xfails.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from kale_like.backends.kfp.validate import check_pipeline_spec
from kale_like.surfaces.cli import main

PIPELINES = Path(__file__).resolve().parent / "fixtures" / "pipelines"
GOOD = sorted(p.stem for p in PIPELINES.glob("*.py") if not p.stem.startswith(("bad_", "bug_")))
KALE_SEEDS = ["kale_loop", "kale_loop_param", "kale_loop_const", "kale_loop_item"]


def fixture(name: str) -> Path:
    path = PIPELINES / f"{name}.py"
    assert path.is_file(), f"missing fixture {path}"
    return path


class IR:
    """A compiled pipeline: the PipelineSpec, searched across the root DAG and every sub-DAG."""

    def __init__(self, text: str):
        self.text = text
        self.spec = next(d for d in yaml.safe_load_all(text) if d)
        self.components = self.spec["components"]

    @property
    def root(self) -> dict:
        return self.spec["root"]

    def dags(self) -> dict[str, dict]:
        """DAG name (`root` or a component name) -> its component (with `dag`)."""
        result = {"root": self.root}
        result.update({n: c for n, c in self.components.items() if "dag" in c})
        return result

    def tasks(self):
        """(dag name, task name, task) for every task of every DAG."""
        for dag_name, component in self.dags().items():
            for task_name, task in component["dag"]["tasks"].items():
                yield dag_name, task_name, task

    def find(self, task_name: str) -> tuple[str, dict]:
        """(enclosing DAG name, task) of the one task with this name."""
        found = [(d, t) for d, n, t in self.tasks() if n == task_name]
        assert len(found) == 1, f"{len(found)} tasks named {task_name!r}: {[d for d, _ in found]}"
        return found[0]

    def task(self, task_name: str) -> dict:
        return self.find(task_name)[1]

    def body(self, task_name: str) -> dict:
        """The component (a sub-DAG for loops, conditions and nested pipelines) a task runs."""
        return self.components[self.task(task_name)["componentRef"]["name"]]

    def body_tasks(self, task_name: str) -> dict:
        return self.body(task_name)["dag"]["tasks"]

    def loops(self) -> list[tuple[str, str, dict]]:
        return [(d, n, t) for d, n, t in self.tasks() if "parameterIterator" in t]

    def loop(self) -> tuple[str, dict]:
        ((_, name, task),) = self.loops()
        return name, task

    def conditions(self) -> list[str]:
        return [t["triggerPolicy"]["condition"] for _, _, t in self.tasks()
                if "condition" in t.get("triggerPolicy", {})]

    def chain_to(self, task_name: str) -> list[str]:
        """The conditions of every DAG enclosing a task, outermost first."""
        by_component = {t["componentRef"]["name"]: (d, n) for d, n, t in self.tasks()}
        dag, _ = self.find(task_name)
        chain = []
        while dag != "root":
            parent_dag, parent = by_component[dag]
            condition = self.task(parent).get("triggerPolicy", {}).get("condition")
            if condition:
                chain.append(condition)
            dag = parent_dag
        return chain[::-1]

    def saying(self, word: str) -> list[str]:
        """Names of the tasks given the constant `word=<word>` (the `say` steps of the if fixtures)."""
        return sorted(n for _, n, t in self.tasks()
                      if t.get("inputs", {}).get("parameters", {}).get("word", {}).get("runtimeValue") ==
                      {"constant": word})

    def chains_of(self, word: str) -> list[list[str]]:
        """The condition chains of every task saying `word`, sorted."""
        return sorted(self.chain_to(n) for n in self.saying(word))

    def input_parameter(self, task_name: str, name: str) -> dict:
        return self.task(task_name)["inputs"]["parameters"][name]

    def input_artifact(self, task_name: str, name: str) -> dict:
        return self.task(task_name)["inputs"]["artifacts"][name]


def channel(name: str) -> str:
    """How KFP's CEL reads a channel."""
    return f"inputs.parameter_values['pipelinechannel--{name}']"


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """`compiled(fixture_name, *cli_args) -> IR`, compiled once per session; exit 0 and a valid IR required."""
    cache: dict[tuple, IR] = {}

    def compile_(name: str, *args: str) -> IR:
        key = (name, args)
        if key not in cache:
            out = tmp_path_factory.mktemp(name) / "out.yaml"
            code = main([str(fixture(name)), "--kfp", "-o", str(out), "-q", *args])
            assert code == 0, f"compiling {name} exited {code}"
            text = out.read_text(encoding="utf-8")
            assert check_pipeline_spec(text) == [], name
            cache[key] = IR(text)
        return cache[key]

    return compile_


# ---------------------------------------------------------------------------------------------
# Every construct compiles, writes the YAML and the DSL module, and passes the structural check


@pytest.mark.parametrize("name", GOOD)
def test_fixture_compiles_to_a_valid_ir_and_a_dsl_module(run_cli, tmp_path, name):
    out = tmp_path / "out.yaml"
    result = run_cli(fixture(name), "--kfp", "-o", out)
    assert result.code == 0, result.err
    assert "error" not in result.err
    text = out.read_text(encoding="utf-8")
    assert check_pipeline_spec(text) == []
    dsl = tmp_path / "out_kfp.py"
    source = dsl.read_text(encoding="utf-8")
    ast.parse(source)
    assert "@dsl.pipeline" in source or "@_kl_pipeline(" in source  # the latter wraps dsl.pipeline


@pytest.mark.parametrize("name", GOOD)
def test_fixture_runs_as_plain_python(name, capsys):
    """The fixtures are real pipelines: every @pipeline function whose parameters all have defaults runs as
    Python (the SDK decorators return the functions unchanged)."""
    import inspect

    spec = importlib.util.spec_from_file_location(f"kale_like_fixture_{name}", fixture(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pipelines = [f for f in vars(module).values() if hasattr(f, "__kale_like_pipeline__")]
    runnable = [f for f in pipelines
                if all(p.default is not p.empty for p in inspect.signature(f).parameters.values())]
    assert runnable, f"{name} has no @pipeline function to run"
    for function in runnable:
        function()


def test_fixture_set_covers_the_constructs():
    expected = {
        "loop_param_parallel", "loop_step_list", "loop_const", "loop_literal", "loop_range", "loop_dict",
        "loop_nested", "collected_append", "collected_comprehension", "if_elif_else", "if_and", "if_or_else",
        "if_not_in", "if_in_mixed_types", "if_or_of_and", "if_truth", "if_coerce", "if_chain_compare", "oneof",
        "oneof_elif", "oneof_artifact", "nested_pipeline", "nested_pipeline_loop", "loop_if_collected", "return_call",
        *KALE_SEEDS,
    }
    assert expected == set(GOOD)


def test_dsl_module_uses_the_kfp_constructs(run_cli, tmp_path):
    result = run_cli(fixture("collected_append"), "--kfp", "-o", tmp_path / "p.yaml")
    assert result.code == 0, result.err
    source = (tmp_path / "p_kfp.py").read_text(encoding="utf-8")
    # the list may be empty at run time: the loop runs over it (or one filler item) from a generated step
    # (kale_like/lowering/empty_loops.py)
    assert "_items_or_filler(items=xs)" in source
    assert re.search(r"with dsl\.ParallelFor\(items=\w+_items_or_filler_task\.output\w*\b", source)
    assert "dsl.Collected(" in source


# ---------------------------------------------------------------------------------------------
# Loops


def test_loop_over_a_parameter_with_parallelism(compiled):
    ir = compiled("loop_param_parallel")
    (name, loop), = [(n, t) for d, n, t in ir.loops() if d == "root"]
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--items"}
    assert loop["inputs"]["parameters"]["pipelinechannel--items"] == {"componentInputParameter": "items"}
    assert loop["iteratorPolicy"] == {"parallelismLimit": 2}
    item = loop["parameterIterator"]["itemInput"]
    assert ir.find("show")[0] == loop["componentRef"]["name"]
    assert ir.input_parameter("show", "x") == {"componentInputParameter": item}
    assert ir.root["inputDefinitions"]["parameters"]["items"]["parameterType"] == "LIST"


def test_loop_over_a_step_result(compiled):
    """`-> list` has no element type: kfp declares the loop item STRING and the KFP driver turns each
    item into text (resolve.go handleParamTypeValidationAndConversion), so `use(x: int)` would fail on a
    cluster. The loop runs over a generated step's JSON texts of the items instead; `use` decodes them."""
    ir = compiled("loop_step_list")
    name, loop = ir.loop()
    assert loop["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--make-xs-items-Output"}
    assert loop["inputs"]["parameters"]["pipelinechannel--make-xs-items-Output"] == {
        "taskOutputParameter": {"outputParameterKey": "Output", "producerTask": "make-xs-items"}
    }
    assert ir.input_parameter("make-xs-items", "items") == {
        "taskOutputParameter": {"outputParameterKey": "Output", "producerTask": "make"}
    }
    assert "make-xs-items" in loop["dependentTasks"]
    assert "iteratorPolicy" not in loop
    item = loop["parameterIterator"]["itemInput"]
    assert ir.input_parameter("use", "x") == {"componentInputParameter": item}
    assert ir.components[loop["componentRef"]["name"]]["inputDefinitions"]["parameters"][item] == {
        "parameterType": "STRING"}
    assert ir.components[ir.task("use")["componentRef"]["name"]]["inputDefinitions"]["parameters"]["x"] == {
        "parameterType": "STRING"}


def test_loop_over_a_module_constant_is_static(compiled):
    ir = compiled("loop_const")
    _, loop = ir.loop()
    assert json.loads(loop["parameterIterator"]["items"]["raw"]) == [7, 8, 9]
    assert "inputs" not in loop
    item = loop["parameterIterator"]["itemInput"]
    assert ir.input_parameter("use", "seed") == {"componentInputParameter": item}
    assert ir.components[loop["componentRef"]["name"]]["inputDefinitions"]["parameters"][item] == {
        "parameterType": "NUMBER_INTEGER"
    }


def test_loop_over_a_list_literal_is_static(compiled):
    ir = compiled("loop_literal")
    _, loop = ir.loop()
    assert json.loads(loop["parameterIterator"]["items"]["raw"]) == ["a", "b"]
    item = loop["parameterIterator"]["itemInput"]
    assert ir.components[loop["componentRef"]["name"]]["inputDefinitions"]["parameters"][item] == {
        "parameterType": "STRING"
    }


def test_loop_over_range_with_parallelism(compiled):
    ir = compiled("loop_range")
    _, loop = ir.loop()
    assert json.loads(loop["parameterIterator"]["items"]["raw"]) == [1, 3, 5]
    assert loop["iteratorPolicy"] == {"parallelismLimit": 1}


def test_loops_over_a_dict(compiled):
    ir = compiled("loop_dict")
    loops = {n: t for _, n, t in ir.loops()}
    assert len(loops) == 3
    # .items() of a parameter: a helper task lists the entries, the loop reads fields of each
    assert ir.input_parameter("list-items", "mapping") == {"componentInputParameter": "weights"}
    (items_loop,) = [t for t in loops.values() if "inputParameter" in t["parameterIterator"]["items"]]
    assert items_loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--list-items-Output"
    assert items_loop["inputs"]["parameters"]["pipelinechannel--list-items-Output"]["taskOutputParameter"] == {
        "outputParameterKey": "Output", "producerTask": "list-items"
    }
    item = items_loop["parameterIterator"]["itemInput"]
    key, value = ir.input_parameter("pair", "key"), ir.input_parameter("pair", "value")
    assert key["componentInputParameter"] == value["componentInputParameter"] == item
    assert key["parameterExpressionSelector"].startswith("parseJson(string_value)[")
    assert value["parameterExpressionSelector"].startswith("parseJson(string_value)[")
    assert key["parameterExpressionSelector"] != value["parameterExpressionSelector"]
    # .keys() / .values() of a module constant: static items
    raws = sorted((json.loads(t["parameterIterator"]["items"]["raw"]) for t in loops.values()
                   if "raw" in t["parameterIterator"]["items"]), key=repr)
    assert len(raws) == 2 and [1, 9] in raws and ["small", "large"] in raws


def test_nested_loops(compiled):
    ir = compiled("loop_nested")
    (outer_dag, outer, outer_task), (inner_dag, inner, inner_task) = sorted(
        ir.loops(), key=lambda loop: loop[0] != "root")
    assert outer_dag == "root"
    assert outer_task["parameterIterator"]["items"] == {"inputParameter": "pipelinechannel--rows"}
    assert inner_dag == outer_task["componentRef"]["name"]
    assert json.loads(inner_task["parameterIterator"]["items"]["raw"]) == ["x", "y"]
    dag, _ = ir.find("cell")
    assert dag == inner_task["componentRef"]["name"]
    assert ir.input_parameter("cell", "row") == {
        "componentInputParameter": outer_task["parameterIterator"]["itemInput"]}
    assert ir.input_parameter("cell", "col") == {
        "componentInputParameter": inner_task["parameterIterator"]["itemInput"]}
    # the outer item is handed down into the inner loop's DAG
    assert inner_task["inputs"]["parameters"][outer_task["parameterIterator"]["itemInput"]] == {
        "componentInputParameter": outer_task["parameterIterator"]["itemInput"]}


# ---------------------------------------------------------------------------------------------
# Collected


def test_append_in_a_loop_is_collected(compiled):
    ir = compiled("collected_append")
    name, loop = ir.loop()
    values = ir.input_parameter("total", "values")["taskOutputParameter"]
    assert values["producerTask"] == name
    assert "for-loop" in name and name in ir.task("total")["dependentTasks"]
    body = ir.body(name)
    key = values["outputParameterKey"]
    assert body["dag"]["outputs"]["parameters"][key] == {
        "valueFromParameter": {"outputParameterKey": "Output", "producerSubtask": "square"}}
    assert body["outputDefinitions"]["parameters"][key] == {"parameterType": "LIST"}
    assert ir.components["comp-total"]["inputDefinitions"]["parameters"]["values"]["parameterType"] == "LIST"


def test_collected_ints_are_typed_for_the_runtime(compiled):
    """The consumer's program declares the collected list as ints, so the runtime can undo KFP's floats."""
    ir = compiled("collected_append")
    executor = ir.components["comp-total"]["executorLabel"]
    program = ir.spec["deploymentSpec"]["executors"][executor]["container"]["command"][-1]
    assert "'values': 'list:int'" in program


def test_comprehension_of_untyped_results_is_a_collected_artifact_list(compiled):
    ir = compiled("collected_comprehension")
    name, loop = ir.loop()
    assert json.loads(loop["parameterIterator"]["items"]["raw"]) == ["a", "b"]
    parts = ir.input_artifact("merge", "parts")["taskOutputArtifact"]
    assert parts["producerTask"] == name
    body = ir.body(name)
    key = parts["outputArtifactKey"]
    assert body["dag"]["outputs"]["artifacts"][key] == {
        "artifactSelectors": [{"outputArtifactKey": "parts", "producerSubtask": "load"}]}
    assert body["outputDefinitions"]["artifacts"][key]["isArtifactList"] is True
    assert ir.components["comp-merge"]["inputDefinitions"]["artifacts"]["parts"]["isArtifactList"] is True


def test_collected_inside_a_branch_and_a_condition_inside_a_loop(compiled):
    ir = compiled("loop_if_collected")
    # if on a static int item inside the loop: an int comparison
    (int_loop,) = [t for _, _, t in ir.loops() if json.loads(t["parameterIterator"]["items"].get("raw", "0")) ==
                   [0, 1, 2, 3]]
    item = int_loop["parameterIterator"]["itemInput"].removeprefix("pipelinechannel--")
    assert ir.chain_to("square") == [f"int({channel(item)}) >= 2"]
    # the loop and its consumer are both inside `if go:`
    assert ir.chain_to("show") == [f"{channel('go')} == true"]
    show_dag, _ = ir.find("show")
    values = ir.input_parameter("show", "values")["taskOutputParameter"]
    loop_dag, _ = ir.find(values["producerTask"])
    assert loop_dag == show_dag
    assert ir.body(values["producerTask"])["dag"]["outputs"]["parameters"][values["outputParameterKey"]] == {
        "valueFromParameter": {"outputParameterKey": "Output", "producerSubtask": "square-2"}}


# ---------------------------------------------------------------------------------------------
# Conditions


def test_if_elif_else(compiled):
    ir = compiled("if_elif_else")
    branches = ir.body_tasks("condition-branches-1")
    high = f"{channel('score-Output')} > {channel('threshold')}"
    fast = f"{channel('mode')} == 'fast'"
    conditions = {name: task["triggerPolicy"]["condition"] for name, task in branches.items()}
    assert sorted(conditions.values()) == sorted([high, f"!({high}) && {fast}", f"!({high}) && !({fast})"])
    assert ir.chains_of("high") == [[high]]
    assert ir.chains_of("fast") == [[f"!({high}) && {fast}"]]
    assert ir.chains_of("low") == [[f"!({high}) && !({fast})"]]
    assert ir.task("condition-branches-1")["inputs"]["parameters"]["pipelinechannel--score-Output"] == {
        "taskOutputParameter": {"outputParameterKey": "Output", "producerTask": "score"}}


def test_and_is_two_nested_conditions_of_one_clause_each(compiled):
    ir = compiled("if_and")
    assert ir.chains_of("both") == [[f"int({channel('n')}) > 1", f"{channel('tag')} == 'x'"]]
    assert all("&&" not in c and "||" not in c for c in ir.conditions())


def test_or_with_else_is_exclusive_nested_conditions(compiled):
    ir = compiled("if_or_else")
    n_neg, tag_y = f"int({channel('n')}) < 0", f"{channel('tag')} == 'y'"
    n_pos, tag_not_y = f"int({channel('n')}) >= 0", f"{channel('tag')} != 'y'"
    # the `either` body is written once per path: n < 0, or (tag == 'y' and not n < 0)
    assert ir.chains_of("either") == sorted([[n_neg], [tag_y, n_pos]])
    assert ir.chains_of("neither") == [[n_pos, tag_not_y]]
    assert all("&&" not in c and "||" not in c for c in ir.conditions())


def test_in_and_not_are_lowered_to_equalities(compiled):
    ir = compiled("if_not_in")
    region, n = channel("region"), channel("n")
    assert ir.chains_of("known") == sorted([[f"{region} == 'eu'"], [f"{region} == 'us'", f"{region} != 'eu'"]])
    assert ir.chains_of("small") == [[f"int({n}) < 3"]]  # not n >= 3
    assert ir.chains_of("other") == [[f"int({n}) != 1", f"int({n}) != 2"]]  # not in [1, 2]
    assert all(" in " not in c and "!(" not in c for c in ir.conditions())


def test_in_drops_options_that_can_never_match(compiled):
    ir = compiled("if_in_mixed_types")
    assert ir.conditions() == [f"int({channel('n')}) == 1"]


def test_truth_tests(compiled):
    ir = compiled("if_truth")
    assert ir.chains_of("ready") == [[f"{channel('ready-Output')} == true"]]
    assert ir.chains_of("count") == [[f"int({channel('count')}) != 0"]]
    assert ir.chains_of("nameless") == [[f"{channel('name')} == ''"]]


def test_literals_take_the_operand_type(compiled):
    ir = compiled("if_coerce")
    assert ir.chains_of("n") == [[f"int({channel('n')}) >= 1"]]  # n > 0.5
    assert ir.chains_of("f") == [[f"{channel('flag-Output')} == true"]]  # f == 1 (KFP alone: == false)
    assert ir.chains_of("x") == [[f"{channel('x')} > 1.0"]]  # x > 1 on a float
    assert ir.chains_of("t") == [[f"{channel('flag-Output')} == true"]]  # f == True
    assert not any("'1'" in c or "'True'" in c or "== false" in c for c in ir.conditions())


def test_chained_comparison_and_int_against_float(compiled):
    ir = compiled("if_chain_compare")
    assert ir.chains_of("in range") == [[f"int({channel('n')}) > 0", f"int({channel('n')}) < 10"]]
    # KFP would test double(int(n)) > m, wrong beyond 2**53: a generated step compares them exactly
    # (kale_like/lowering/kfp_conditions.py; the step's inputs are named after the parameters they read)
    assert ir.chains_of("bigger") == [[f"{channel('test-Output')} == true"]]
    assert ir.input_parameter("test", "n")["componentInputParameter"] == "n"
    assert ir.input_parameter("test", "m")["componentInputParameter"] == "m"


# ---------------------------------------------------------------------------------------------
# OneOf


def test_value_assigned_in_every_branch_is_oneof(compiled):
    ir = compiled("oneof")
    points = ir.input_parameter("report", "points")["taskOutputParameter"]
    assert points["producerTask"] == "condition-branches-1"
    body = ir.body("condition-branches-1")
    oneof = body["dag"]["outputs"]["parameters"][points["outputParameterKey"]]
    assert oneof == {"valueFromOneof": {"parameterSelectors": [
        {"outputParameterKey": "pipelinechannel--win-Output", "producerSubtask": "condition-2"},
        {"outputParameterKey": "pipelinechannel--lose-Output", "producerSubtask": "condition-3"},
    ]}}
    assert body["outputDefinitions"]["parameters"][points["outputParameterKey"]] == {
        "parameterType": "NUMBER_INTEGER"}
    assert ir.chain_to("win") == [f"{channel('coin-Output')} == 'heads'"]
    assert ir.chain_to("lose") == [f"!({channel('coin-Output')} == 'heads')"]


def test_oneof_over_elif(compiled):
    ir = compiled("oneof_elif")
    v = ir.input_parameter("show", "v")["taskOutputParameter"]
    selectors = ir.body(v["producerTask"])["dag"]["outputs"]["parameters"][v["outputParameterKey"]]
    producers = [s["outputParameterKey"] for s in selectors["valueFromOneof"]["parameterSelectors"]]
    assert producers == ["pipelinechannel--a-Output", "pipelinechannel--b-Output", "pipelinechannel--c-Output"]


def test_oneof_of_datasets_uses_artifact_selectors(compiled):
    ir = compiled("oneof_artifact")
    data = ir.input_artifact("size", "data")["taskOutputArtifact"]
    assert data["producerTask"] == "condition-branches-1"
    selectors = ir.body("condition-branches-1")["dag"]["outputs"]["artifacts"][data["outputArtifactKey"]]
    assert sorted(s["producerSubtask"] for s in selectors["artifactSelectors"]) == ["condition-2", "condition-3"]


# ---------------------------------------------------------------------------------------------
# Nested pipelines


def test_nested_pipeline_is_a_sub_dag(compiled):
    ir = compiled("nested_pipeline")
    inner = ir.task("inner")
    assert inner["componentRef"]["name"] == "comp-inner"
    assert inner["inputs"]["parameters"] == {"a": {"componentInputParameter": "x"}}
    body = ir.body("inner")
    assert set(body["dag"]["tasks"]) == {"add"}
    assert body["dag"]["tasks"]["add"]["inputs"]["parameters"] == {
        "a": {"componentInputParameter": "a"}, "b": {"componentInputParameter": "b"}}
    assert body["inputDefinitions"]["parameters"]["b"]["defaultValue"] == 1
    assert body["dag"]["outputs"]["parameters"]["Output"] == {
        "valueFromParameter": {"outputParameterKey": "Output", "producerSubtask": "add"}}
    assert ir.input_parameter("show", "total") == {
        "taskOutputParameter": {"outputParameterKey": "Output", "producerTask": "inner"}}
    assert set(ir.root["dag"]["tasks"]) == {"inner", "show"}


def test_nested_pipeline_in_a_loop_is_collected(compiled):
    ir = compiled("nested_pipeline_loop")
    name, loop = ir.loop()
    assert ir.find("twice")[0] == loop["componentRef"]["name"]
    assert "double" in ir.body_tasks("twice")
    values = ir.input_parameter("total", "values")["taskOutputParameter"]
    assert values["producerTask"] == name
    assert ir.body(name)["dag"]["outputs"]["parameters"][values["outputParameterKey"]] == {
        "valueFromParameter": {"outputParameterKey": "Output", "producerSubtask": "twice"}}


# ---------------------------------------------------------------------------------------------
# Kale 0.7's SDK loop examples (only the import line changed)


@pytest.mark.parametrize("name", KALE_SEEDS)
def test_kale_loop_example_loops_over_the_generated_list(compiled, name):
    ir = compiled(name)
    assert ir.spec["pipelineInfo"]["name"] == "loop"
    # generate() returns an untyped list: the loop runs over its items' JSON texts, made by a generated
    # step (see test_loop_over_a_step_result)
    assert ir.input_parameter("generate-res-items", "items")["taskOutputParameter"] == {
        "outputParameterKey": "Output", "producerTask": "generate"}
    items = "pipelinechannel--generate-res-items-Output"
    (outer,) = [t for d, _, t in ir.loops() if items in str(t["parameterIterator"])]
    assert outer["parameterIterator"]["items"] == {"inputParameter": items}
    assert outer["inputs"]["parameters"][items]["taskOutputParameter"] == {
        "outputParameterKey": "Output", "producerTask": "generate-res-items"}
    assert ir.input_parameter("printer", "value") == {
        "componentInputParameter": outer["parameterIterator"]["itemInput"]}


@pytest.mark.parametrize("name", KALE_SEEDS[1:])
def test_kale_loop_example_inner_loop_over_the_parameter(compiled, name):
    ir = compiled(name)
    assert ir.root["inputDefinitions"]["parameters"]["arg_list"]["parameterType"] == "LIST"
    (param_dag, _, param_loop), = [(d, n, t) for d, n, t in ir.loops()
                                   if t["parameterIterator"]["items"].get("inputParameter") ==
                                   "pipelinechannel--arg_list"]
    assert param_dag != "root"  # nested in the loop over generate()'s result
    assert ir.input_parameter("printer2", "value") == {
        "componentInputParameter": param_loop["parameterIterator"]["itemInput"]}


@pytest.mark.parametrize("name", KALE_SEEDS[2:])
def test_kale_loop_example_innermost_loop_over_the_constant(compiled, name):
    ir = compiled(name)
    (const_loop,) = [t for _, _, t in ir.loops() if t["parameterIterator"]["items"].get("raw") == "[2, 3]"]
    dag, _ = ir.find("printer3")
    assert dag == const_loop["componentRef"]["name"]
    items = {p: spec["componentInputParameter"] for p, spec in ir.task("printer3")["inputs"]["parameters"].items()}
    assert items["value3"] == const_loop["parameterIterator"]["itemInput"]
    assert items["value1"] == "pipelinechannel--generate-res-items-Output-loop-item"
    assert items["value2"] == "pipelinechannel--arg_list-loop-item"


def test_kale_loop_item_example_loops_over_a_literal(compiled):
    ir = compiled("kale_loop_item")
    (literal,) = [(d, t) for d, _, t in ir.loops() if t["parameterIterator"]["items"].get("raw") == "[4, 5]"]
    assert literal[0] == "root"
    assert ir.find("printer4")[0] == literal[1]["componentRef"]["name"]
    assert len(ir.loops()) == 4


def test_kale_loop_item_example_matches_the_shipped_example(compiled, tmp_path):
    """examples/pipelines/kale_loop_item.py is the same pipeline: it compiles to the same DAGs."""
    example = Path(__file__).resolve().parents[1] / "examples" / "pipelines" / "kale_loop_item.py"
    out = tmp_path / "example.yaml"
    assert main([str(example), "--kfp", "-o", str(out), "-q", "--no-dsl"]) == 0
    shipped = IR(out.read_text(encoding="utf-8"))
    ours = compiled("kale_loop_item")
    assert {n: t.get("parameterIterator") for _, n, t in shipped.tasks()} == {
        n: t.get("parameterIterator") for _, n, t in ours.tasks()}


# ---------------------------------------------------------------------------------------------
# Known bugs (strict xfails: they fail today)


def _compile_bug(name: str, tmp_path: Path) -> tuple[int, IR | None]:
    out = tmp_path / "out.yaml"
    code = main([str(fixture(name)), "--kfp", "-o", str(out), "-q", "--no-dsl"])
    return code, IR(out.read_text(encoding="utf-8")) if code == 0 else None


def test_condition_on_an_int_item_of_a_list_parameter(tmp_path):
    code, ir = _compile_bug("bug_loop_item_condition", tmp_path)
    assert code == 0
    (condition,) = ir.conditions()
    assert condition == f"int({channel('xs-loop-item')}) > 9"


def test_condition_on_an_int_item_of_a_step_list(tmp_path):
    code, ir = _compile_bug("bug_step_list_item_condition", tmp_path)
    assert code == 0
    (condition,) = ir.conditions()
    assert condition == f"int({channel('make-Output-loop-item')}) > 9"


def test_condition_on_a_dict_key_compiles_or_is_refused(tmp_path, capsys):
    code, ir = _compile_bug("bug_dict_key_condition", tmp_path)
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 0:
        assert check_pipeline_spec(ir.text) == []


def test_int_loop_item_to_a_float_argument(tmp_path):
    code, _ = _compile_bug("bug_int_item_to_float", tmp_path)
    assert code == 0


def test_main_pipeline_return_is_a_pipeline_output(tmp_path):
    code, ir = _compile_bug("bug_main_return", tmp_path)
    assert code == 0
    assert ir.root.get("outputDefinitions", {}).get("parameters")


def test_parameter_without_default_is_required(tmp_path):
    code, ir = _compile_bug("bug_required_parameter", tmp_path)
    assert code == 0
    assert not ir.root["inputDefinitions"]["parameters"]["n"].get("isOptional", False)


def test_nested_pipeline_parameter_without_default_is_required(compiled):
    ir = compiled("nested_pipeline")
    assert not ir.body("inner")["inputDefinitions"]["parameters"]["a"].get("isOptional", False)


def _satisfied(ir: IR, env: dict) -> list[str]:
    """The words of the `say` tasks whose enclosing conditions (`channel op literal` CEL) all hold for `env`."""
    import operator
    import re

    ops = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
           ">=": operator.ge}
    pattern = re.compile(r"^(?:int\()?inputs\.parameter_values\['pipelinechannel--([^']+)'\]\)? "
                         r"(==|!=|<=|>=|<|>) (.+)$")

    def holds(cel: str) -> bool:
        name, op, literal = pattern.match(cel).groups()
        value = {"true": True, "false": False}.get(literal)
        return ops[op](env[name], ast.literal_eval(literal) if value is None else value)

    words = {n: t["inputs"]["parameters"]["word"]["runtimeValue"]["constant"] for _, n, t in ir.tasks()
             if "word" in t.get("inputs", {}).get("parameters", {})}
    return sorted(word for n, word in words.items() if all(holds(c) for c in ir.chain_to(n)))


def test_condition_reader_sees_python_branch(compiled):
    """The CEL reader used below agrees with Python on a fixture that is right."""
    ir = compiled("if_or_else")
    assert _satisfied(ir, {"n": 5, "tag": "x"}) == ["neither"]
    assert _satisfied(ir, {"n": -1, "tag": "y"}) == ["either"]
    assert _satisfied(ir, {"n": 2, "tag": "y"}) == ["either"]


@pytest.mark.parametrize("n", [0, 2])
@pytest.mark.parametrize("tag", ["x", "y"])
@pytest.mark.parametrize("go", [True, False])
def test_or_of_an_and_runs_the_body_once(compiled, n, tag, go):
    """Regression: the paths of `(n > 1 and tag == 'x') or go` once let the body run twice (go, n <= 1, tag != 'x')."""
    ir = compiled("if_or_of_and")
    expected = ["once"] if (n > 1 and tag == "x") or go else []
    assert _satisfied(ir, {"n": n, "tag": tag, "go": go}) == expected


# ---------------------------------------------------------------------------------------------
# Runs with kfp.local, compared with the pipeline function run as plain Python


def _python_run(name: str, function: str, log: Path, **arguments) -> list[str]:
    """Call the fixture's pipeline function directly: the SDK decorators leave plain functions."""
    spec = importlib.util.spec_from_file_location(f"kale_like_fixture_{name}", fixture(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    log.write_text("", encoding="utf-8")
    getattr(module, function)(log=str(log), **arguments)
    return log.read_text(encoding="utf-8").splitlines()


def _local_run(name: str, tmp_path: Path, log: Path, **arguments) -> list[str]:
    """Compile the fixture, run the YAML with kfp.local's SubprocessRunner; return the steps' log lines.

    kfp.local indents task output by swapping `builtins.print` per task, which is not thread-safe:
    after a parallel loop the process can be left with a wrapped print that pads every line. The
    original print and root logger are put back, so later tests (which compare captured output
    exactly) are not affected.
    """
    import builtins
    import logging

    from kfp import components, local

    out = tmp_path / f"{name}.yaml"
    assert main([str(fixture(name)), "--kfp", "-o", str(out), "-q", "--no-dsl"]) == 0
    log.write_text("", encoding="utf-8")
    original_print, root = builtins.print, logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
        components.load_component_from_file(str(out))(log=str(log), **arguments)
    finally:
        builtins.print = original_print
        root.handlers[:] = handlers
        root.setLevel(level)
    return log.read_text(encoding="utf-8").splitlines()


@pytest.mark.slow
def test_local_run_collected_ints_reach_the_consumer_as_ints(tmp_path):
    lines = _local_run("collected_append", tmp_path, tmp_path / "kfp.log")
    assert lines == ["total [1, 4, 9] ['int', 'int', 'int']"]
    assert lines == _python_run("collected_append", "main", tmp_path / "py.log")


@pytest.mark.slow
@pytest.mark.parametrize("arguments", [
    {},  # score 0.7 > 0.5
    {"threshold": 0.9},  # elif mode == "fast"
    {"threshold": 0.9, "mode": "slow"},  # else
], ids=["if", "elif", "else"])
def test_local_run_if_elif_else_picks_the_python_branch(tmp_path, arguments):
    lines = _local_run("if_elif_else", tmp_path, tmp_path / "kfp.log", **arguments)
    expected = _python_run("if_elif_else", "main", tmp_path / "py.log", **arguments)
    assert len(expected) == 1
    assert lines == expected


@pytest.mark.slow
def test_local_run_oneof_passes_the_branch_value(tmp_path):
    lines = _local_run("oneof", tmp_path, tmp_path / "kfp.log")
    assert lines == ["report 1"]
    assert lines == _python_run("oneof", "main", tmp_path / "py.log")


@pytest.mark.slow
def test_local_run_loop_over_a_parameter_sees_every_item(tmp_path):
    lines = _local_run("loop_param_parallel", tmp_path, tmp_path / "kfp.log", items=[4, 5, 6])
    assert sorted(lines) == ["show 4", "show 5", "show 6"]
    assert sorted(lines) == sorted(_python_run("loop_param_parallel", "main", tmp_path / "py.log", items=[4, 5, 6]))


@pytest.mark.slow
def test_local_run_nested_pipeline_returns_its_value(tmp_path):
    lines = _local_run("nested_pipeline", tmp_path, tmp_path / "kfp.log", x=5)
    assert lines == ["show 6"]
    assert lines == _python_run("nested_pipeline", "outer", tmp_path / "py.log", x=5)


@pytest.mark.slow
def test_local_run_collected_over_nested_loops_is_flat(tmp_path):
    """Python's `res` is one flat list of ints; kale_like's executor gives exactly that."""
    import kale_like

    log = tmp_path / "ours.log"
    log.write_text("", encoding="utf-8")
    result = kale_like.run(str(fixture("bug_nested_collected")), {"log": str(log)}, store=tmp_path / "store",
                           echo=False, backend="thread")
    assert result.succeeded, result.error
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines == _python_run("bug_nested_collected", "main", tmp_path / "py.log") == ["total [10, 20, 20, 40]"]


@pytest.mark.slow
def test_kfp_local_collected_over_nested_loops_is_nested(tmp_path):
    """kfp.local's known defect (kept as a record): it hands the consumer per-iteration lists of floats."""
    lines = _local_run("bug_nested_collected", tmp_path, tmp_path / "kfp.log")
    assert lines == ["total [[10.0, 20.0], [20.0, 40.0]]"]


@pytest.mark.slow
def test_local_run_or_of_an_and_runs_the_body_once(tmp_path):
    """go is true while n > 1 and tag == 'x' both fail: Python says `once` once, so must KFP."""
    lines = _local_run("if_or_of_and", tmp_path, tmp_path / "kfp.log")
    assert lines == ["say once"]
    assert lines == _python_run("if_or_of_and", "main", tmp_path / "py.log")
