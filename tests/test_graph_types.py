"""The type names of the step graph (kale_like/graph/types.py): one grammar, read and written in one place."""

from __future__ import annotations

import pytest

from kale_like.graph.types import ANY, element_of, inner, is_json, is_list, is_parameter_type, json_of, list_of, outer


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
