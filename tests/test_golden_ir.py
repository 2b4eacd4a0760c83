"""Each example compiles to the YAML kept in tests/golden/ (see tests/golden_ir.py).

A change to what kale_like writes for the examples shows as a diff of those files in review: rewrite
them with `python tests/golden_ir.py` and commit them with the change. The bytes also depend on the
kfp libraries that write the YAML; where they are not the versions the files were written with
(tests/golden/VERSIONS), the comparison is skipped, saying so.
"""

from __future__ import annotations

import difflib

import pytest

from golden_ir import EXAMPLES, GOLDEN, compile_example, golden_path, writer_versions

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")


def test_every_example_has_a_golden_file():
    assert sorted(p.name for p in GOLDEN.glob("*.yaml")) == sorted(golden_path(e).name for e in EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.parent.name}/{e.name}" for e in EXAMPLES])
def test_example_compiles_to_its_golden_ir(example):
    recorded = (GOLDEN / "VERSIONS").read_text(encoding="utf-8")
    if recorded != writer_versions():
        pytest.skip(f"the golden IR was written by {recorded.split()} and this environment has "
                    f"{writer_versions().split()}: regenerate with `python tests/golden_ir.py` to compare")
    expected = golden_path(example).read_text(encoding="utf-8")
    actual = compile_example(example)
    if actual != expected:
        diff = "".join(list(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                                 str(golden_path(example).name), "compiled now"))[:80])
        pytest.fail(f"{example.name} compiles to other IR than {golden_path(example).name}; if the change is "
                    f"meant, run `python tests/golden_ir.py` and commit the files:\n{diff}")
