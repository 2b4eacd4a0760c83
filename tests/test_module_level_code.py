"""A step of a Python pipeline file carries only the module-level code it uses.

The file's top level was written to run once, at import; kale_like never imports it, and a step
gets the imports, helpers and constants it reads, plus the statements that change those
(`CONFIG["retries"] = 3`). Any other module-level statement (a print, a call with a side effect,
`main()`) runs in no step, and the compile warns with its line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import kale_like

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")


def module(folder: Path) -> tuple[Path, Path]:
    marker = folder / "side-effect-ran"
    source = folder / "side_effects.py"
    source.write_text(textwrap.dedent(f'''\
        """Module docstring."""
        import pathlib

        from kale_like import pipeline, step

        pathlib.Path({str(marker)!r}).write_text("ran")
        CONFIG = {{"retries": 1}}
        CONFIG["retries"] = 3
        UNUSED = []
        UNUSED.append("x")


        def main():
            pathlib.Path({str(marker)!r}).write_text("main ran")


        main()


        @step
        def read_config() -> int:
            return CONFIG["retries"] + len(pathlib.Path("/").name)


        @pipeline(name="side-effects")
        def side_effects():
            return read_config()
        '''), encoding="utf-8")
    return source, marker


def test_statements_no_step_uses_never_run_and_the_compile_says_where(tmp_path, run_cli):
    source, marker = module(tmp_path)
    out = tmp_path / "p.yaml"
    compiled = run_cli(source, "--kfp", "-o", out)
    assert compiled.code == 0, compiled.err
    warned = [line for line in compiled.err.splitlines() if "runs in no step" in line]
    assert [Path(line.split(": ", 2)[1]).name for line in warned] == [
        "side_effects.py:6", "side_effects.py:10", "side_effects.py:17"], compiled.err
    assert "'main()' runs in no step" in warned[2] and "move it into the steps that need it" in warned[2]
    dsl = out.with_name("p_kfp.py").read_text(encoding="utf-8")
    assert 'CONFIG["retries"] = 3' in dsl  # changes a constant the step reads: it runs there
    assert "write_text(\"ran\")" not in dsl and "main()" not in dsl and "UNUSED" not in dsl

    result = kale_like.run(source, backend="thread", store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error
    assert result.value("read_config") == 3
    assert not marker.exists()


def test_notebook_cells_tagged_imports_still_run_whole_in_every_step(tmp_path):
    """Kale's meaning of an `imports`/`functions` cell: its statements with side effects (a seed)
    run in every step."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("import random\nrandom.seed(7)", metadata={"tags": ["imports"]}),
        nbformat.v4.new_code_cell("draw = random.random()", metadata={"tags": ["step:sample"]}),
    ]
    path = tmp_path / "seeded.ipynb"
    nbformat.write(notebook, path)
    assert "random.seed(7)" in kale_like.compile(path)


@pytest.mark.parametrize("code", ["C = 1", "A = B = -2.5", "NAMES = ['eu', 'us']", "EMPTY = {}", "FLAG = None",
                                  "SIZES = {'small': 1, 'large': (9, 10)}"])
def test_a_constant_read_without_libcst_has_the_facts_libcst_finds(code):
    from kale_like.frontends.analysis import analyze, constant_facts

    assert constant_facts(code) == analyze(code)


@pytest.mark.parametrize("code", ["C = f(1)", "C = x", "C: int = 1", "C.a = 1", "C = [y]", "C = 1\nD = 2", "C += 1"])
def test_anything_but_a_plain_constant_goes_to_libcst(code):
    from kale_like.frontends.analysis import constant_facts

    assert constant_facts(code) is None
