"""Module-level constants as the module's statements make them (frontends/module_constants.py)."""

from __future__ import annotations

import pytest

from kale_like.frontends.module_constants import ModuleConstants


def known_after(*statements: str) -> ModuleConstants:
    constants = ModuleConstants()
    for line, statement in enumerate(statements, 1):
        constants.read(statement, line)
    return constants


def test_literals_computed_values_and_pure_changes_are_worked_out_as_python_runs_them():
    known = known_after("SEEDS = list(range(3))", "SEEDS.append(7)", "NAMES = [f'm{i}' for i in SEEDS]",
                        "CONFIG = {'lr': 0.1}", "CONFIG['lr'] = 0.5",
                        "SEEDS += [8]", "TOTAL = sum(SEEDS)")
    assert known.values == {"SEEDS": [0, 1, 2, 7, 8], "NAMES": ["m0", "m1", "m2", "m7"], "CONFIG": {"lr": 0.5},
                            "TOTAL": 18}
    assert known.changed == {}


@pytest.mark.parametrize("change", [
    "SEEDS.extend(load())",  # calls code that is not known to be pure
    "for s in range(2):\n    SEEDS.append(s)",
    "SEEDS = read_seeds()",
    "SEEDS[0] = int(open('f').read())",
    "SEEDS.append(4 ** 100)",  # not worked out now (it could take any time)
    "SEEDS = SEEDS * len(SEEDS)",  # repeated by a count that is not a literal
])
def test_a_change_whose_value_is_unknown_makes_the_name_unknown(change):
    known = known_after("SEEDS = [1, 2]", change)
    assert "SEEDS" not in known.values and known.changed == {"SEEDS": 2}


def test_a_sequence_repeated_by_a_literal_count_is_worked_out():
    known = known_after("XS = [1, 2] * 2", "WORD = 'ab' * 2", "N = 3 * 4")
    assert known.values == {"XS": [1, 2, 1, 2], "WORD": "abab", "N": 12}


def test_a_later_plain_assignment_makes_it_known_again_and_other_names_are_untouched():
    known = known_after("A = [1]", "B = 2", "A.extend(load())", "A = [3]")
    assert known.values == {"A": [3], "B": 2} and known.changed == {}


def test_evaluating_is_bounded_and_never_runs_other_code():
    known = known_after("BIG = list(range(10 ** 9))", "R = list(range(5))")
    assert "BIG" not in known.values and known.values["R"] == [0, 1, 2, 3, 4]
    known = known_after("X = __import__('os').getcwd()")
    assert "X" not in known.values
