"""The type names of the step graph (kale_like/graph/types.py): one grammar, read and written in one place."""

from __future__ import annotations

import pytest

from conftest import REPO
from kale_like.frontends.functions import python_to_graph
from kale_like.frontends.notebook import notebook_to_graph
from kale_like.frontends.python_module import read_module
from kale_like.graph.model import Loop, StepGraph, walk
from kale_like.graph.types import (
    ANY, TYPE_NAMES, element_of, inner, is_json, is_list, is_parameter_type, json_of, list_of, outer, type_name,
)
from kale_like.lowering import lower


@pytest.mark.parametrize(("name", "kind", "qualifier"), [
    ("int", "int", ""), ("list", "list", ""), ("list:int", "list", "int"), ("json:float", "json", "float"),
    ("any", "any", ""),
])
def test_a_name_reads_as_its_kind_and_what_qualifies_it(name, kind, qualifier):
    assert (outer(name), inner(name)) == (kind, qualifier)


def test_lists_of_one_scalar_type_keep_it_and_others_are_plain_lists():
    assert [list_of(t) for t in ("int", "bool", "dict", "list", ANY, "")] == ["list:int", "list:bool"] + ["list"] * 4
    assert [element_of(t) for t in ("list:str", "list", "dict", ANY)] == ["str", ANY, ANY, ANY]
    assert element_of(list_of("float")) == "float"  # the two are inverse for scalars


def test_parameter_types_are_what_kfp_passes_as_parameters():
    assert all(is_parameter_type(t) for t in ("int", "float", "str", "bool", "list", "dict", "list:int"))
    assert not any(is_parameter_type(t) for t in (ANY, "json", "json:int", "list:dict", "tuple"))


def test_a_json_text_is_decoded_into_the_readers_declared_type():
    assert [json_of(t) for t in ("int", "list:str", ANY, "json")] == ["json:int", "json:list:str", "json", "json"]
    assert is_json("json:int") and is_json("json") and not is_json("int")
    assert is_list("list:int") and is_list("list") and not is_list("json:list")


def test_a_name_outside_the_grammar_is_refused_where_it_is_made():
    assert type_name("list:int") == "list:int"
    with pytest.raises(ValueError, match="list:dict"):
        type_name("list:dict")
    with pytest.raises(ValueError):
        type_name("json:json:int")


def test_every_name_the_grammar_makes_is_a_type_name():
    made = {list_of(t) for t in TYPE_NAMES} | {json_of(t) for t in TYPE_NAMES} | {element_of(t) for t in TYPE_NAMES}
    assert made <= TYPE_NAMES
    assert all(json_of(json_of(t)) == json_of(t) for t in TYPE_NAMES)  # a JSON text is not encoded twice


def _types_in(graph: StepGraph) -> set[str]:
    found = {p.type for p in graph.parameters} | {graph.return_type}
    for sub in graph.subpipelines:
        found |= {p.type for p in sub.parameters} | {sub.return_type}
    for body in [graph.body] + [sub.body for sub in graph.subpipelines]:
        for node in walk(body):
            if isinstance(node, Loop):
                found |= {node.item_type} | {f.type for f in node.fields}
            for value in list(getattr(node, "inputs", ())) + list(getattr(node, "outputs", ())):
                found.add(value.type)
    return found


def _graphs() -> list[tuple[str, StepGraph]]:
    made = []
    for path in sorted((REPO / "examples" / "pipelines").glob("*.py")) + [REPO / "tests/fixtures/local/expressions.py"]:
        module = read_module(path, [])
        for name in module.pipelines:
            made.append((f"{path.name}:{name}", python_to_graph(path, name)))
    for path in sorted((REPO / "examples" / "notebooks").glob("*.ipynb")):
        made.append((path.name, notebook_to_graph(path)))
    return made


def test_every_type_a_graph_carries_is_in_the_grammar_before_and_after_lowering():
    graphs = _graphs()
    assert len(graphs) > 20
    for label, graph in graphs:
        assert _types_in(graph) <= TYPE_NAMES, label
        assert _types_in(lower(graph)) <= TYPE_NAMES, label
