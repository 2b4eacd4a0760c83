"""The expressions pass (kale_like/lowering/expressions.py) on tiny graphs: each `Expression` a
frontend keeps becomes, where it stands, the generated step that computes it."""

from __future__ import annotations

from dataclasses import replace

from tiny_graphs import HERE, branch, condition, const, generated, graph, loop, param, reads, run_code, step, sub
from tiny_graphs import task, truth, without_code

from kale_like.graph.model import Expression, Output, Step, walk
from kale_like.lowering import PASSES, lower
from kale_like.lowering.expressions import expressions_as_steps


def expression(name: str, code: str, *inputs, makes: tuple[Output, ...]) -> Expression:
    return Expression(name, code, inputs, makes, HERE)


def test_a_graph_without_expressions_is_left_as_it_is():
    plain = graph(step("prepare", makes=("data",)), step("train", reads("data", task("prepare", "data"))))
    assert expressions_as_steps(plain) == plain


def test_an_expression_becomes_a_generated_step_of_its_name_inputs_and_outputs():
    path = expression("path", 'path = f"s3://{bucket}/v{version}"\n', reads("bucket", param("bucket"), "str"),
                      reads("version", param("version"), "int"), makes=(Output("path", "str"),))
    lowered = expressions_as_steps(graph(path, step("train", reads("path", task("path", "path"), "str"))))
    made, train = lowered.body
    assert isinstance(made, Step) and without_code(made) == replace(generated(
        "path", reads("bucket", param("bucket"), "str"), reads("version", param("version"), "int"),
        makes=(Output("path", "str"),)), from_expression=True)  # it runs when a step of the user's would
    assert run_code(made, bucket="data", version=3) == {"path": "s3://data/v3"}
    assert train == lowered.body[1]  # the reader is unchanged: it reads the step's output of that name


def test_constants_are_written_into_the_code_and_other_values_stay_inputs():
    """A constant whose repr is Python source for it is written in (no IR constant for it); one that
    is not (a float('nan') is written `nan`) stays an input."""
    lr = expression("train_lr", "lr = base_lr * SCALE + offset\n", reads("base_lr", param("base_lr"), "float"),
                    reads("SCALE", const(10), "int"), reads("offset", const(float("nan")), "float"),
                    makes=(Output("lr", "float"),))
    (made,) = expressions_as_steps(graph(lr)).body
    assert isinstance(made, Step)
    assert [value.name for value in made.inputs] == ["base_lr", "offset"]
    result = run_code(made, base_lr=0.5, offset=0.0)
    assert result == {"lr": 5.0}


def test_expressions_inside_loops_branches_and_nested_pipelines_are_lowered_where_they_stand():
    inner = expression("double", "y = x * 2\n", reads("x", param("x"), "int"), makes=(Output("y", "int"),))
    test = expression("test", "test = bool(n > 2)\n", reads("n", param("n"), "int"), makes=(Output("test", "bool"),))
    in_loop = expression("label", "label = f'run {x}'\n", reads("x", const(1), "int"), makes=(Output("label", "str"),))
    whole = graph(test, condition("if-1", branch(truth(task("test", "test")), loop("for-1", const([1, 2]), in_loop))),
                  subpipelines=(sub("child", inner),))
    lowered = expressions_as_steps(whole)
    everywhere = list(walk(lowered.body)) + list(walk(lowered.subpipelines[0].body))
    assert not any(isinstance(node, Expression) for node in everywhere)
    names = [node.name for node in everywhere if isinstance(node, Step) and node.generated]
    assert names == ["test", "label", "double"]
    assert lowered.body[1].id == "if-1" and lowered.body[0].name == "test"  # still before the if it decides


def test_expressions_are_lowered_before_every_other_pass():
    """The later passes (empty loops, loop items, ...) see tasks only."""
    assert PASSES[0] is expressions_as_steps
    lowered = lower(graph(expression("n", "n = 1\n", makes=(Output("n", "int"),))))
    assert [type(node).__name__ for node in lowered.body] == ["Step"]


def test_the_graph_document_draws_expressions_as_small_generated_steps():
    import json

    document = json.loads(graph(expression("path", "path = 'x'\n", makes=(Output("path", "str"),)),
                                step("train", reads("path", task("path", "path")))).to_json())
    entry = next(s for s in document["steps"] if s["name"] == "path")
    assert entry["kind"] == "expression" and entry["generated"] is True
    assert [(e["source"], e["target"]) for e in document["edges"]] == [("path", "train")]
