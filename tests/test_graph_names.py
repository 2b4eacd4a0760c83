"""Unique task names (kale_like/graph/model.py): `base`, `base_2`, ... whichever is free."""

from __future__ import annotations

from kale_like.graph.model import TakenNames, unique_name


def test_a_name_is_the_base_or_the_first_free_numbered_one():
    for taken in ({"a", "a_3"}, TakenNames({"a", "a_3"})):
        assert [unique_name("a", taken) for _ in range(4)] == ["a_2", "a_4", "a_5", "a_6"]
        assert unique_name("b", taken) == "b" and {"a_2", "a_6", "b"} <= taken


def test_taken_names_remember_where_to_go_on_but_see_names_added_by_hand():
    taken = TakenNames({"test"})
    assert unique_name("test", taken) == "test_2"
    taken.add("test_3")  # added without unique_name: skipped all the same
    assert unique_name("test", taken) == "test_4"
    assert taken.next_number == {"test": 5}
