"""A typo in a tag's name or value is answered with the tag it most likely meant (these cases:
the same message reaches the panel's chip and the command line)."""

from __future__ import annotations

import nbformat
import pytest


def _notebook(tmp_path, tags):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": cell_tags}) for source, cell_tags in (
        ("seeds = [1]\nfloor = 1.0", ["pipeline-parameters"]), ("x = 1.0", ["step:load"]), ("y = x * 2", tags))]
    path = tmp_path / "typo.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize(("tags", "hint"), [
    (["step:train", "prev:laod"], "did you mean 'prev:load'?"),
    (["step:train", "foreach:seed:sedes"], "did you mean 'foreach:seed:seeds'? ('seeds' is a pipeline parameter)"),
    (["step:train", "when:xx:>=:1"], "did you mean 'when:x:>=:1'? ('x' is assigned in step 'load')"),
    (["step:train", "when:xx"], "did you mean 'when:x'?"),
    (["step:train", "cache:false"], "did you mean 'cache:disabled'?"),
    (["step:train", "cache:enabeld"], "did you mean 'cache:enabled'?"),
    (["step:train", "env:A=1"], "did you mean 'env:A:1'?"),
    (["step:train", "limit:cpu=1"], "did you mean 'limit:cpu:1'?"),
], ids=["prev", "foreach-list", "when-name", "when-truth", "cache-bool", "cache-spelling", "env-equals", "limit-equals"])
def test_a_typo_in_a_tag_names_the_tag_it_meant(run_cli, tmp_path, tags, hint):
    result = run_cli(_notebook(tmp_path, tags))
    assert result.code == 2
    assert "cell 3" in result.err and f"hint: {hint}" in result.err, result.err


def test_a_typo_in_code_names_the_closest_variable(run_cli, tmp_path):
    path = _notebook(tmp_path, ["step:train"])
    nb = nbformat.read(path, 4)
    nb.cells[2].source = "y = xy * 2"
    nbformat.write(nb, path)
    result = run_cli(path)
    assert "name 'xy' is not defined" in result.err and "did you mean 'x'?" in result.err, result.err


def test_a_bad_value_with_no_close_fix_keeps_the_form_of_the_tag(run_cli, tmp_path):
    result = run_cli(_notebook(tmp_path, ["step:train", "timeout:soon"]))
    assert "'timeout' tags look like timeout:SECONDS" in result.err and "did you mean" not in result.err
