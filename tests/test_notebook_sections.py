"""A notebook without tags compiles and runs: a step per markdown section, or one for the whole notebook."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

import kale_like
from kale_like.frontends.notebook_reader import read_notebook
from kale_like.frontends.notebook_sections import section_tags
from kale_like.surfaces.api import load_graph

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell

SALES = [
    md("# Sales analysis\nWhat sold where."),
    code("import json\nimport math"),
    code("def double(x):\n    return 2 * x"),
    md("## 1. Load the data"),
    code("sales = [3, 1, 4, 1, 5]\nregions = ['eu', 'us']"),
    md("## Clean"),
    code("clean = [double(s) for s in sales if s > 1]"),
    code("print(len(clean))"),
    md("## Regions\n\n### a sub-heading stays in its section"),
    code("upper = [r.upper() for r in regions]"),
    md("## Report"),
    code("report = json.dumps({'total': math.fsum(clean), 'regions': upper})\nprint(report)"),
]


def write(tmp_path: Path, cells: list, name: str = "sales.ipynb") -> Path:
    path = tmp_path / name
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def as_plain_python(path: Path) -> dict:
    """The notebook run top to bottom in one namespace, as Jupyter would."""
    namespace: dict = {}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, str(path), "exec"), namespace)
    return namespace


def test_each_heading_starts_a_step_and_shared_cells_are_imports_and_functions(tmp_path):
    tags = section_tags(read_notebook(write(tmp_path, SALES)))
    assert tags == {1: ("imports",), 2: ("functions",), 4: ("step:load_the_data",), 6: ("step:clean",),
                    7: ("step:clean",), 9: ("step:regions",), 11: ("step:report",)}


def test_sections_that_share_nothing_run_in_parallel_and_results_are_the_notebooks(tmp_path, capsys):
    path = write(tmp_path, SALES)
    graph = load_graph(path)
    edges = {(step.name, tuple(sorted(step.upstream))) for step in graph.steps}
    assert edges == {("load_the_data", ()), ("clean", ("load_the_data",)), ("regions", ("load_the_data",)),
                     ("report", ("clean", "regions"))}
    assert "no step tags, so 4 steps from its headings: load_the_data, clean, regions, report" in graph.warnings[0]
    result = kale_like.run(path, {}, store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error
    plain = as_plain_python(path)
    assert result.value("clean", "clean") == plain["clean"]
    assert result.value("regions", "upper") == plain["upper"]


def test_cli_compiles_an_untagged_notebook_and_says_what_it_made(run_cli, tmp_path):
    path = write(tmp_path, SALES)
    result = run_cli(path, "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 0, result.err
    assert "4 steps from its headings" in result.err and (tmp_path / "out.yaml").is_file()


@pytest.mark.parametrize("one_step", [False, True])
def test_without_headings_or_with_one_step_the_whole_notebook_is_one_step(tmp_path, one_step):
    cells = SALES if one_step else [cell for cell in SALES if cell.cell_type == "code"]
    path = write(tmp_path, cells, "My Notebook.ipynb")
    graph = load_graph(path, one_step=one_step)
    assert [step.name for step in graph.steps] == ["my_notebook"]
    assert "one step for the whole notebook" in graph.warnings[0]
    result = kale_like.run(path, {}, store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error


@pytest.mark.parametrize(("heading", "name"), [
    ("## 2. Clean the data!", "clean_the_data"), ("# 2024 results", "s_2024_results"), ("## ---", "section_1"),
    ("# Über-Analyse", "ber_analyse"),
])
def test_step_names_come_from_the_heading_text(tmp_path, heading, name):
    path = write(tmp_path, [md(heading), code("x = 1")])
    assert section_tags(read_notebook(path)) == {1: (f"step:{name}",)}


def test_code_before_the_first_heading_is_a_step_named_after_the_notebook_and_names_are_unique(tmp_path):
    path = write(tmp_path, [code("a = 1"), md("# Part"), code("b = a"), md("# Part"), code("c = b")], "flow.ipynb")
    assert section_tags(read_notebook(path)) == {0: ("step:flow",), 2: ("step:part",), 4: ("step:part_2",)}


def test_a_notebook_with_any_tag_is_left_to_its_tags(tmp_path, run_cli):
    path = write(tmp_path, [md("# Load"), nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["imports"]})])
    result = run_cli(path, "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 2 and "no step cells" in result.err


def test_one_step_is_for_notebooks(tmp_path, run_cli):
    source = tmp_path / "p.py"
    source.write_text("x = 1\n", encoding="utf-8")
    result = run_cli(source, "--one-step", "--kfp")
    assert result.code == 2 and "--one-step applies to notebooks" in result.err
