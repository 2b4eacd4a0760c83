"""Every cell tag, from its grammar to what it does in the compiled KFP IR."""

from __future__ import annotations

import json

import pytest

from conftest import fixture_notebook
from kale_like.frontends.tags import TAG_GRAMMAR, grammar_json, parse_tag

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

# --- grammar --------------------------------------------------------------------------------------


_GRAMMAR_CASES = [
    ("imports", "imports", {}),
    ("functions", "functions", {}),
    ("pipeline-parameters", "pipeline-parameters", {}),
    ("pipeline-metrics", "pipeline-metrics", {}),
    ("skip", "skip", {}),
    ("step:load_data", "step", {"name": "load_data"}),
    ("block:load_data", "step", {"name": "load_data"}),
    ("prev:load_data", "prev", {"name": "load_data"}),
    ("image:gcr.io/team/img:1.0", "image", {"image": "gcr.io/team/img:1.0"}),
    ("limit:cpu:500m", "limit", {"resource": "cpu", "value": "500m"}),
    ("limit:nvidia.com/gpu:1", "limit", {"resource": "nvidia.com/gpu", "value": "1"}),
    ("request:memory:1Gi", "request", {"resource": "memory", "value": "1Gi"}),
    ("cache:disabled", "cache", {"state": "disabled"}),
    ("retries:3", "retries", {"count": "3"}),
    ("secret:db-creds:password:DB_PASSWORD", "secret", {"secret": "db-creds", "key": "password", "env": "DB_PASSWORD"}),
    ("label:app.kubernetes.io/name:demo", "label", {"key": "app.kubernetes.io/name", "value": "demo"}),
    ("annotation:owner:a:b", "annotation", {"key": "owner", "value": "a:b"}),
    ("env:URL:http://host:80", "env", {"key": "URL", "value": "http://host:80"}),
    ("packages:requests,tqdm", "packages", {"packages": "requests,tqdm"}),
    ("report:enabled", "report", {"state": "enabled"}),
]


@pytest.mark.parametrize(("raw", "kind", "fields"), _GRAMMAR_CASES, ids=[raw for raw, _, _ in _GRAMMAR_CASES])
def test_parse_tag_reads_each_grammar_row(raw, kind, fields):
    tag = parse_tag(raw)
    assert tag is not None
    assert (tag.kind, dict(tag.fields)) == (kind, fields)


@pytest.mark.parametrize(
    "raw",
    ["Step:a", "step:Load", "step:", "setp:a", "cache:maybe", "retries:three", "limit:cpu", "prev:two words", ""],
    ids=["capital-kind", "capital-name", "empty-name", "typo", "bad-cache", "bad-retries", "no-value", "space",
         "empty"],
)
def test_parse_tag_rejects_what_matches_no_row(raw):
    assert parse_tag(raw) is None


def test_grammar_json_lists_every_tag_kind():
    document = json.loads(grammar_json())
    assert [row["kind"] for row in document["tags"]] == list(TAG_GRAMMAR)
    assert "step" in document["cellKinds"]


# --- step:, block:, prev:, skip, untagged and markdown cells --------------------------------------


def test_block_tags_mean_the_same_as_step_tags(run_cli, tmp_path):
    """Same notebook but for the tag spelling: the same pipeline (copied to one file name, because the
    compiled artifacts record their source file)."""
    import shutil

    outputs = []
    for name in ("step_tags", "block_tags"):
        folder = tmp_path / name
        folder.mkdir()
        source = folder / "notebook.ipynb"
        shutil.copy(fixture_notebook(name), source)
        out = folder / "out.yaml"
        assert run_cli(source, "--kfp", "-o", out, "--no-dsl").code == 0
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_block_tags_build_the_declared_steps_and_edges(graph_json):
    graph = graph_json(fixture_notebook("block_tags"))
    assert [s["name"] for s in graph["steps"]] == ["load", "double", "show"]
    edges = {(e["source"], e["target"]): e["names"] for e in graph["edges"]}
    assert edges == {("load", "double"): ["x"], ("double", "show"): ["y"]}


def test_several_prev_tags_make_the_step_wait_for_each(compiled):
    ir = compiled("prev_diamond")
    assert ir.depends_on("join") == {"left", "right"}


def test_prev_tag_alone_orders_steps_without_data(compiled, graph_json):
    ir = compiled("prev_diamond")
    assert ir.depends_on("audit") == {"join"}
    assert ir.data_inputs("audit") == {}
    edges = {(e["source"], e["target"]): e["names"] for e in graph_json(fixture_notebook("prev_diamond"))["edges"]}
    assert edges[("join", "audit")] == []


def test_untagged_cells_continue_the_step_above_across_markdown(graph_json):
    graph = graph_json(fixture_notebook("continuation"))
    load = next(s for s in graph["steps"] if s["name"] == "load")
    assert [block["location"]["cell_index"] for block in load["code"]] == [1, 2, 4]


def test_markdown_cells_are_ignored_even_when_tagged(graph_json):
    graph = graph_json(fixture_notebook("continuation"))
    assert [s["name"] for s in graph["steps"]] == ["load", "report"]


def test_untagged_cell_before_any_tag_is_left_out_with_a_warning(run_cli, graph_json):
    path = fixture_notebook("untagged_first")
    result = run_cli(path)
    assert result.code == 0
    assert "untagged_first.ipynb:cell 1: untagged cell before any tagged cell" in result.err
    graph = graph_json(path)
    assert [s["name"] for s in graph["steps"]] == ["only"]
    assert all(block["location"]["cell_index"] == 1 for block in graph["steps"][0]["code"])


def test_skip_cell_is_left_out_and_the_next_untagged_cell_continues_above_it(compiled, graph_json):
    graph = graph_json(fixture_notebook("skip"))
    load = next(s for s in graph["steps"] if s["name"] == "load")
    assert [block["location"]["cell_index"] for block in load["code"]] == [0, 2]
    ir = compiled("skip")
    assert all("undefined_debug_value" not in ir.program(step) for step in ("load", "show"))
    assert ir.data_inputs("show") == {"data_sorted": "load"}


# --- settings tags in the IR --------------------------------------------------------------------


def _settings_tags(name: str, kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """(step, tag) for every tag of the given kinds in a fixture notebook."""
    notebook = json.loads(fixture_notebook(name).read_text(encoding="utf-8"))
    found = []
    for cell in notebook["cells"]:
        tags = cell["metadata"].get("tags", [])
        step = next((t.split(":", 1)[1] for t in tags if t.startswith("step:")), None)
        found += [(step, t) for t in tags if t.split(":", 1)[0] in kinds]
    return found


_RESOURCE_TAGS = _settings_tags("resources", ("limit", "request"))


@pytest.mark.parametrize(("step", "tag"), _RESOURCE_TAGS, ids=[f"{s}-{t}" for s, t in _RESOURCE_TAGS])
def test_every_resource_tag_reaches_the_ir(compiled, step, tag):
    kind, resource, value = tag.split(":")
    resources = compiled("resources").container(step)["resources"]
    if resource.endswith("/gpu"):
        assert resources["accelerator"]["type"] == resource
        assert str(resources["accelerator"]["count"]) == value
    else:
        key = f"resource{resource.capitalize()}{kind.capitalize()}"  # e.g. resourceCpuLimit
        assert resources[key] == value


def test_resource_tags_give_numeric_limits_and_requests(compiled):
    resources = compiled("resources").container("train")["resources"]
    assert resources["cpuLimit"] == 2.0
    assert resources["cpuRequest"] == 0.5
    assert resources["memoryLimit"] == pytest.approx(4 * 2**30 / 1e9)
    assert resources["memoryRequest"] == pytest.approx(2**30 / 1e9)


def test_step_without_resource_tags_has_no_resources(compiled):
    assert "resources" not in compiled("kubernetes").container("plain")


@pytest.mark.parametrize(
    ("notebook", "step", "cached"),
    [
        ("caching", "cached", True),
        ("caching", "uncached", False),
        ("caching", "plain", True),
        ("caching_off", "cached", True),
        ("caching_off", "plain", False),
    ],
    ids=["tag-enabled", "tag-disabled", "default-on", "tag-overrides-metadata-off", "metadata-off"],
)
def test_cache_tag_sets_caching_options(compiled, notebook, step, cached):
    options = compiled(notebook).task(step)["cachingOptions"]
    assert options.get("enableCache", False) is cached


def test_secret_tag_exposes_the_key_as_an_environment_variable(compiled):
    secrets = compiled("kubernetes").kubernetes("fetch")["secretAsEnv"]
    assert len(secrets) == 1
    assert secrets[0]["secretName"] == "db-creds"
    assert secrets[0]["keyToEnv"] == [{"secretKey": "password", "envVar": "DB_PASSWORD"}]


def test_label_and_annotation_tags_become_pod_metadata(compiled):
    metadata = compiled("kubernetes").kubernetes("fetch")["podMetadata"]
    assert metadata["labels"] == {"team": "ml", "app.kubernetes.io/part-of": "demo"}
    assert metadata["annotations"] == {"owner": "alice"}


def test_step_without_kubernetes_tags_has_no_platform_entry(compiled):
    assert compiled("kubernetes").kubernetes("plain") == {}


def test_notebook_without_kubernetes_tags_has_no_platform_document(compiled):
    assert compiled("resources").platform == {}


def test_image_tag_sets_the_step_image(compiled):
    ir = compiled("run_settings")
    assert ir.container("job")["image"] == "example.com/team/job:1.2"
    assert ir.container("plain")["image"] == "python:3.11"


def test_retries_tag_sets_the_retry_policy(compiled):
    ir = compiled("run_settings")
    assert ir.task("job")["retryPolicy"]["maxRetryCount"] == 3
    assert "retryPolicy" not in ir.task("plain")


def test_env_tags_set_container_environment_variables(compiled):
    ir = compiled("run_settings")
    expected = [{"name": "MODE", "value": "fast"}, {"name": "URL", "value": "http://host:8080"}]
    assert ir.container("job")["env"] == expected
    assert "env" not in ir.container("plain")


def test_packages_tag_adds_to_packages_to_install(compiled):
    ir = compiled("run_settings")
    assert {"requests", "tqdm"} <= ir.packages("job")
    assert not {"requests", "tqdm"} & ir.packages("plain")


def test_report_tag_is_accepted_and_changes_nothing(run_cli, tmp_path, compiled):
    result = run_cli(fixture_notebook("run_settings"), "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 0
    assert result.err == ""
    container = compiled("run_settings").container("plain")
    assert set(container) == {"image", "command", "args"}
