"""Plain Python expressions in a `@pipeline` body compile, and mean what Python means.

tests/fixtures/local/expressions.py holds pipelines written as a user would: f-strings, arithmetic,
lists and dicts built from parameters and results, step calls inside arguments and conditions, a
comprehension passed to a step, `enumerate` / `zip` / `range(n)` / `sorted` loops, literal lists of
dicts. Run as plain Python the file is the oracle; compiled and run by the local runner (a model of
the KFP backend's driver, kale_like/backends/local/driver.py) every step must note the same values
and types.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runs import python_and_local_notes

from kale_like.frontends import pipeline_expressions as expressions
from kale_like.frontends.functions import python_to_graph
from kale_like.graph.model import ANY, Expression, Loop, Step, walk
from kale_like.lowering import lower

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

SOURCE = Path(__file__).resolve().parent / "fixtures" / "local" / "expressions.py"

CASES = [
    ("values", {}),
    ("values", {"version": 0, "base_lr": 2.5, "raw": "x"}),
    ("tests", {}),  # step calls, subscripts, `in` a list parameter, and/or, bool ordering, a quote
    ("tests", {"raw": "stale", "threshold": 0.1, "allowed": ["stale"], "n": 1}),
    ("loops", {}),
    ("loops", {"ks": [], "n": 0, "names": []}),  # every computed loop empty
    ("returns", {}),  # a nested pipeline returning an f-string, called inside another call
    # a name every branch assigns (a constant, a parameter, a result made before the if, an expression), after
    # tests with and/or and a step call: a OneOf of generated hand-over steps, the tests made by generated steps
    ("branches", {}),
    ("branches", {"n": 1}),
    ("branches", {"n": -5, "mode": "slow"}),
    ("branches", {"n": 0, "mode": "slow"}),
    # guard clauses in a nested pipeline (`if q < low: return low`, then more): one returned value (a OneOf)
    ("guards", {}),
    ("guards", {"q": -2.0}),
    ("guards", {"q": 7.0}),
    # a loop whose body is `if test: results.append(step(x))`, a comprehension with `if`: the filtered items
    ("filters", {}),
    ("filters", {"ks": []}),
    ("filters", {"ks": [2]}),
    ("unpacking", {}),  # `a, b = b, a` swaps; `first, last = bounds` unpacks a list parameter
    ("unpacking", {"bounds": ["a", 3.5]}),
    ("appending", {}),  # .append() of a loop item and of an expression: collected like step results
    ("appending", {"xs": []}),
    ("choices", {}),  # `x = step(a) if test else step(b)`: only the chosen step runs
    ("choices", {"n": 1}),
    ("augmented", {}),  # `n += 2`, `n *= step(n)`, `name += f"..."` outside loops
    ("keyed", {}),  # `d = {}` then `d[k] = step(k)` in a loop: a dict keyed in the loop's order
    # expressions over loop items (`10 // x`, `record["a"]`, `i + x`): over empty lists nothing runs, [] is read
    ("fillers", {}),
    ("fillers", {"xs": [], "records": []}),
    ("elifs", {}),  # if n == 0: ... elif 10 // n > 1: the elif's test is not evaluated when n == 0
    ("elifs", {"n": 2, "xs": [2, 4]}),
    ("elifs", {"n": 20}),
    ("relooping", {}),  # loops over a collected list and over a OneOf: an expression lists the items
    ("relooping", {"n": 1}),
    ("relooping", {"ks": []}),
    ("keyed", {"ks": []}),
    ("grid", {}),  # loops nested over one list (the outer one runs over a copy: lowering/own_list.py)
    ("grid", {"xs": []}),
    ("grid", {"xs": [3]}),
    ("lazy", {}),  # step calls after and/or and in elif tests run only when Python calls them (n == 0: never)
    ("lazy", {"n": 2, "table": "fresh"}),
    ("lazy", {"n": 50}),
    ("identity", {}),  # `is None`, `is True`, `is not None`: a generated step tests them, as Python does
    ("identity", {"key": "fresh"}),
    # an if/elif/else in a loop collecting per branch: a filtered loop per branch; a step call as a filter:
    # its answers collected first, then the items it keeps (each step runs once an item)
    ("sieve", {}),
    ("sieve", {"ks": []}),
    ("sieve", {"ks": [2]}),
    ("built", {}),  # .append() outside any loop: xs = xs + [value]
    ("constant_dicts", {}),  # a literal dict's values of mixed types, number keys, an empty dict
    ("deep_loops", {}),  # for i, (a, b) in enumerate(zip(xs, ys)); for ch in word
    ("deep_loops", {"xs": [], "ys": [], "word": ""}),
    ("unpacked", {}),  # low, high = nested_pipeline(n)
    ("module_values", {}),  # SEEDS = list(range(3)); SEEDS.append(7); NAMES = [f"m{i}" for i in SEEDS]
]


@pytest.mark.parametrize(("pipeline", "params"), CASES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(CASES)])
def test_local_run_notes_what_python_notes(pipeline, params, tmp_path):
    python, local = python_and_local_notes(SOURCE, pipeline, params, tmp_path)
    assert local == python


def steps_of(pipeline: str, lowered: bool = False) -> dict[str, Step]:
    graph = python_to_graph(SOURCE, pipeline)
    if lowered:
        graph = lower(graph)
    bodies = [graph.body] + [sub.body for sub in graph.subpipelines]
    return {node.name: node for body in bodies for node in walk(body) if isinstance(node, (Step, Expression))}


def test_expressions_are_held_in_the_graph_named_after_what_they_feed():
    nodes = steps_of("values")
    computed = {name: node for name, node in nodes.items() if isinstance(node, Expression)}
    assert {"path", "train_lr", "train_epochs", "sizes"} <= set(computed)
    assert all(isinstance(nodes[name], Step) and not nodes[name].generated for name in ("prepare", "train", "show"))
    path = computed["path"]
    assert path.code == 'path = f"s3://{bucket}/v{version}/train.csv"\n'
    assert [(i.name, i.ref.kind) for i in path.inputs] == [("bucket", "parameter"), ("version", "parameter")]
    assert path.outputs[0].type == "str" and computed["sizes"].outputs[0].type == "list:int"
    lr = computed["train_lr"]
    assert lr.code == "lr = base_lr * SCALE\n" and lr.outputs[0].type == "float" and path.location.line == 54
    assert [(i.name, i.ref.kind, i.ref.value) for i in lr.inputs if i.ref.kind == "constant"] == [("SCALE", "constant", 10)]


def test_lowering_makes_each_expression_a_generated_step():
    steps = steps_of("values", lowered=True)
    generated = {name: step for name, step in steps.items() if step.generated}
    assert {"path", "train_lr", "train_epochs", "sizes"} <= set(generated)
    assert generated["train_lr"].code[0].code == "SCALE = 10\nlr = base_lr * SCALE\n"  # a constant is written in
    assert [i.name for i in generated["train_lr"].inputs] == ["base_lr"]


def test_an_expression_of_constants_is_folded_when_compiling():
    """`f"s3://{BUCKET}/latest"` reads only a module constant: no step computes it."""
    steps = steps_of("values")
    shows = [s for s in steps.values() if isinstance(s, Step) and s.function == "show"]
    constant = [i.ref.value for s in shows for i in s.inputs if i.ref.kind == "constant"]
    assert "s3://models/latest" in constant
    assert not any("BUCKET" in s.code for s in steps.values() if isinstance(s, Expression))


def test_a_step_call_inside_an_argument_is_a_task_of_its_own():
    steps = steps_of("values")
    train = steps["train"]
    data = next(i for i in train.inputs if i.name == "data")
    assert data.ref.kind == "task" and data.ref.source == "prepare" and data.ref.output == "data"
    assert not steps["prepare"].generated


def test_computed_loop_sources_list_their_items_in_a_generated_step():
    graph = python_to_graph(SOURCE, "loops")
    loops = [node for node in walk(graph.body) if isinstance(node, Loop)]
    assert len(loops) == 9
    by_items = {loop.items.source: loop for loop in loops if loop.items.kind == "task"}
    assert by_items["j_items"].item_type == "int"  # range(n): typed items, kept as they are by the driver
    assert by_items["i_k_items"].item_type == "dict"  # enumerate: records with fields i and k
    assert [(f.name, f.type) for f in by_items["i_k_items"].fields] == [("field_i", ANY), ("field_k", ANY)]
    assert by_items["config_items"].item_type == ANY and by_items["item_items"].item_type == ANY
    assert next(loop for loop in loops if loop.items.kind == "parameter").items.source == "ks"  # the comprehension


def test_items_of_unknown_type_are_listed_as_json_texts_by_the_same_step():
    """The driver hands such items over as text (lowering/loop_items.py): the step listing them
    encodes each one (each field of a record), and the steps decode them."""
    lowered = lower(python_to_graph(SOURCE, "loops"))
    loops = {loop.items.source: loop for loop in walk(lowered.body) if isinstance(loop, Loop)}
    assert loops["config_items"].item_type == "json" and loops["item_items"].item_type == "json"
    assert [(f.name, f.type) for f in loops["i_k_items"].fields] == [("field_i", "json"), ("field_k", "json")]
    listing = next(node for node in walk(lowered.body) if isinstance(node, Step) and node.name == "i_k_items")
    namespace = {"ks": [3, 1]}
    exec(listing.code[0].code, namespace)
    assert namespace["items"] == [{"field_i": "0", "field_k": "3"}, {"field_i": "1", "field_k": "1"}]


@pytest.mark.parametrize(("text", "names"), [
    ('f"s3://{bucket}/v{version}"', ["bucket", "version"]),
    ("[x * k for x in xs if x > low]", ["k", "xs", "low"]),
    ('sorted(rows, key=lambda r: r["score"])[0].upper()', ["sorted", "rows"]),
    ("model.auc + other['auc']", ["model", "other"]),
])
def test_free_names_are_what_the_expression_reads_from_outside(text, names):
    assert expressions.free_names(text) == names


@pytest.mark.parametrize(("text", "what"), [
    ("open(path).read()", "'open(...)'"),
    ("print(x) or x", "'print(...)'"),
    ("items.append(3)", "'items.append(...)'"),
    ("(y := 3)", "'(y := 3)' changes a name"),
])
def test_impure_parts_are_found(text, what):
    problem = expressions.impurity(expressions.parse(text))
    assert problem is not None and problem.what.startswith(what)


@pytest.mark.parametrize("text", ['x.strip().split(",")', "len(xs) + max(xs)", "sorted(d.items())",
                                  "[v for v in xs if v]", "(lambda v: v * 2)(n)"])
def test_pure_expressions_pass(text):
    assert expressions.impurity(expressions.parse(text)) is None


@pytest.mark.parametrize(("text", "kind"), [
    ("a + b", "int"), ("a / b", "float"), ("a + f", "float"), ('f"{a}"', "str"), ("s + s", "str"),
    ("a > b", "bool"), ("[a, b, 3]", "list:int"), ("[a, s]", ANY), ('{"k": a}', "dict"), ("{a: s}", ANY),
    ("len(xs)", "int"), ("sorted(xs)", "list:int"), ("list(range(a))", "list:int"), ("max(xs)", "int"),
    ("s.split()", "list:str"), ("u + 1", ANY), ("(a, b)", ANY), ("[x for x in xs if x > a]", "list:int"),
    ("[x * 2 for x in xs]", ANY),
])
def test_result_types_follow_from_the_names_types(text, kind):
    types = {"a": "int", "b": "int", "f": "float", "s": "str", "xs": "list:int", "u": ANY}
    assert expressions.infer_type(expressions.parse(text), types) == kind


def test_folding_evaluates_only_what_is_quick_and_leaves_errors_to_the_run():
    constants = {"n": 3, "s": "ab"}
    assert expressions.foldable(expressions.parse("n * 2 + 1"), constants)
    assert not expressions.foldable(expressions.parse("s * n"), constants)  # repeats a sequence
    assert not expressions.foldable(expressions.parse("n ** 100000"), constants)
    assert expressions.fold("[x * n for x in [1, 2]]", constants) == (True, [3, 6])
    assert expressions.fold("n / 0", constants) == (False, None)


def test_a_value_every_branch_assigns_is_handed_on_by_the_branch_that_ran():
    steps = steps_of("branches", lowered=True)
    handed = sorted(name for name, step in steps.items() if step.generated and name.startswith(("level_value",
                                                                                                "size_value")))
    assert handed == ["level_value", "level_value_2", "level_value_3", "size_value"]
    namespace: dict = {}
    exec(steps["level_value"].code[0].code, namespace)  # the constant is written into the step's code
    assert namespace["level"] == "high" and not steps["level_value"].inputs
    assert [i.ref.source for i in steps["level_value_2"].inputs] == ["mode"]
    assert [i.ref.source for i in steps["level_value_3"].inputs] == ["prepare"]  # made before the if


def test_a_filtering_loop_runs_over_the_items_that_pass():
    """KFP cannot collect from a task that may not run; the loop runs over a generated step's list."""
    graph = python_to_graph(SOURCE, "filters")
    loops = [node for node in walk(graph.body) if isinstance(node, Loop)]
    sources = {loop.items.source for loop in loops}
    assert {"k_items", "k_items_2"} <= sources
    filtered = [node for node in walk(graph.body) if isinstance(node, Expression) and node.name == "k_items"]
    assert filtered[0].code == "items = list([k for k in ks if k > 2])\n"


def test_the_summary_lists_what_the_body_computes_between_the_steps(capsys):
    from kale_like.surfaces.cli import main

    assert main([str(SOURCE), "--pipeline", "values"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("pipeline values: 12 steps, 9 computed values, ")
    assert lines[1].split() == ["path", "computes:", "path", "=", 'f"s3://{bucket}/v{version}/train.csv"']
    assert lines[2].split() == ["show", "after:", "path"]  # in body order: what a step reads comes first


def test_loops_carry_their_head_as_written_for_whoever_draws_the_graph():
    headers = [loop.header for loop in walk(python_to_graph(SOURCE, "loops").body) if isinstance(loop, Loop)]
    assert headers[:3] == ["for i, k in enumerate(ks)", "for j in range(n)", "for k, name in zip(ks, names)"]
    grid = [loop.header for loop in walk(python_to_graph(SOURCE, "grid").body) if isinstance(loop, Loop)]
    assert grid[-1] == "for i, a in enumerate(xs)"  # parallel(xs, parallelism=2) inside: the box says how many


@pytest.mark.parametrize(("pipeline", "params"), [
    ("label", {"name": "m", "version": 2}),  # a str from an f-string
    ("clamp", {"q": 7.0}), ("clamp", {"q": 0.5}),  # a float chosen by guard clauses (a OneOf)
    ("bounds", {"n": 3}),  # a list of an int and a step's float, untyped: an artifact
])
def test_a_run_returns_what_calling_the_function_returns(pipeline, params, tmp_path):
    import importlib.util

    import kale_like

    spec = importlib.util.spec_from_file_location("_kl_plain_returns", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = getattr(module, pipeline)(**params)
    result = kale_like.run(SOURCE, params, pipeline=pipeline, store=tmp_path / "store", cache=False, echo=False)
    assert result.succeeded, result.error
    assert result.returned == expected and type(result.returned) is type(expected)
