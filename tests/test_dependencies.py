"""Data dependencies: which step produces each name a step reads, as the IR wires it."""

from __future__ import annotations

import pytest

from conftest import fixture_notebook

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")


def _edges(graph: dict) -> dict[tuple[str, str], list[str]]:
    return {(e["source"], e["target"]): e["names"] for e in graph["edges"]}


# --- inputs and outputs per step ----------------------------------------------------------------

_CHAIN = [
    # step, {input: producer}, outputs
    ("load", {}, {"x"}),
    ("double", {"x": "load"}, {"y"}),
    ("show", {"y": "double"}, set()),
]


@pytest.mark.parametrize(("step", "inputs", "outputs"), _CHAIN, ids=[c[0] for c in _CHAIN])
def test_each_step_reads_and_hands_on_only_what_is_needed(compiled, step, inputs, outputs):
    ir = compiled("step_tags")
    assert ir.data_inputs(step) == inputs
    assert set(ir.outputs(step)) == outputs


def test_data_dependencies_order_the_tasks(compiled):
    ir = compiled("step_tags")
    assert ir.depends_on("load") == set()
    assert ir.depends_on("double") == {"load"}
    assert ir.depends_on("show") == {"double"}


def test_a_name_defined_across_continuation_cells_is_an_output_of_the_step(compiled):
    ir = compiled("continuation")
    assert ir.data_inputs("report") == {"mean": "load"}
    assert set(ir.outputs("load")) == {"mean"}


# --- diamond declared with prev: ----------------------------------------------------------------


def test_prev_diamond_stays_a_diamond(compiled):
    ir = compiled("prev_diamond")
    assert ir.depends_on("left") == {"load"}
    assert ir.depends_on("right") == {"load"}
    assert ir.depends_on("join") == {"left", "right"}


def test_parallel_branch_reads_from_its_prev_parent_not_its_sibling(compiled):
    """`left` changes `frame` in place, but `right` is declared after `load` only."""
    ir = compiled("prev_diamond")
    assert ir.data_inputs("right") == {"frame": "load"}
    assert ir.data_inputs("join") == {"left_size": "left", "right_size": "right"}


def test_prev_diamond_graph_edges_carry_the_variables(graph_json):
    assert _edges(graph_json(fixture_notebook("prev_diamond"))) == {
        ("load", "left"): ["frame"],
        ("load", "right"): ["frame"],
        ("left", "join"): ["left_size"],
        ("right", "join"): ["right_size"],
        ("join", "audit"): [],
    }


# --- which definition a step reads --------------------------------------------------------------


def test_redefined_name_comes_from_the_nearest_earlier_definer(compiled):
    ir = compiled("redefined_name")
    assert ir.data_inputs("reader") == {"x": "second"}
    assert ir.depends_on("reader") == {"second"}


def test_an_overwritten_definition_is_not_an_output(compiled):
    ir = compiled("redefined_name")
    assert ir.outputs("first") == {}
    assert set(ir.outputs("second")) == {"x"}


def test_in_place_mutation_makes_the_mutating_step_the_producer(compiled):
    ir = compiled("inplace_mutation")
    assert ir.data_inputs("b") == {"df": "a", "items": "a"}
    assert ir.data_inputs("c") == {"df": "b", "items": "b"}
    assert ir.depends_on("c") == {"b"}


# --- free variables of functions ----------------------------------------------------------------


def test_function_using_a_parameter_makes_the_calling_step_read_it(compiled):
    ir = compiled("function_free_vars")
    assert "threshold" in ir.parameter_inputs("score")


def test_function_using_a_step_variable_makes_the_calling_step_read_it(compiled):
    ir = compiled("function_free_vars")
    assert ir.data_inputs("score") == {"factor": "setup"}
    assert ir.depends_on("score") == {"setup"}


def test_function_free_variables_show_as_graph_edges(graph_json):
    edges = _edges(graph_json(fixture_notebook("function_free_vars")))
    assert edges == {("setup", "score"): ["factor"]}
