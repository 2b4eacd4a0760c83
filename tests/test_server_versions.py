"""The KFP server version a pipeline targets: where it is set (`--kfp-version`, notebook metadata
`kubeflow_notebook.kfp_version`, `@pipeline(kfp_version=...)`, the `kale_like.run` API), bad values,
and the compile-time checks of `backends/kfp/server_checks.py` on real compiled pipelines (the
fixtures in tests/fixtures/versions/): each shape refused on the releases that cannot run it, a
warning where a release may get it wrong, nothing where it runs as written.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from kale_like.backends.kfp import server_checks
from kale_like.backends.kfp.server_checks import FEATURES, check_for_server
from kale_like.errors import KaleLikeError
from kale_like.kfp_server import DEFAULT, SUPPORTED, ServerVersion

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
VERSIONS = TESTS / "fixtures" / "versions"

# fixture -> {version: (features refused, features warned)}; a version left out: nothing at all
ALL = SUPPORTED
OLDER_THAN_17 = ("2.14", "2.15", "2.16")
EXPECTED: dict[str, dict[str, tuple[set[str], set[str]]]] = {
    "artifact_oneof": {v: ({"artifact_oneof"}, set()) for v in OLDER_THAN_17},
    "nested_oneof": {v: ({"nested_oneof"}, set()) for v in OLDER_THAN_17},
    "loop_in_exit": {"2.14": ({"loop_in_exit_handler"}, {"exit_status_nested"}),
                     "2.15": (set(), {"exit_status_nested"}), "2.16": (set(), {"exit_status_nested"})},
    "exit_around_if": {v: (set(), {"exit_status_nested"}) for v in OLDER_THAN_17},
    "cached_oneof": {},  # kale_like ends each branch with a generated uncached step
    "uncached_oneof": {},
}


def compiled_at_latest(run_cli, tmp_path: Path, name: str) -> tuple[dict, dict]:
    """The fixture compiled by the CLI for the newest server (nothing refused): its two documents."""
    out = tmp_path / f"{name}.yaml"
    result = run_cli(VERSIONS / f"{name}.py", "--kfp", "-o", out, "--no-dsl", "--kfp-version", "2.17", "-q")
    assert result.code == 0, result.err
    documents = list(yaml.safe_load_all(out.read_text(encoding="utf-8")))
    return documents[0], (documents[1] if len(documents) > 1 else {})


def kfp_compiled(tmp_path: Path, module: str) -> Path:
    """A fixture written with the kfp SDK itself, compiled by kfp's compiler."""
    from kfp import compiler

    spec = importlib.util.spec_from_file_location(f"versions_{module}", VERSIONS / f"{module}.py")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    out = tmp_path / f"{module}.yaml"
    compiler.Compiler().compile(loaded.main, str(out))
    return out


def notebook_copy(tmp_path: Path, kfp_version: object = None) -> Path:
    """The loop-in-exit-handler notebook, with `kubeflow_notebook.kfp_version` set when given."""
    nb = nbformat.read(VERSIONS / "loop_in_exit.ipynb", as_version=4)
    if kfp_version is not None:
        nb.metadata["kubeflow_notebook"]["kfp_version"] = kfp_version
    path = tmp_path / "loop_in_exit.ipynb"
    nbformat.write(nb, path)
    return path


# ---------------------------------------------------------------------------------------------
# the version type


@pytest.mark.parametrize("text, expected", [("2.15", "2.15"), ("2.15.0", "2.15"), ("v2.16.1", "2.16"),
                                            (" 2.17 ", "2.17"), (None, "2.14"), ("", "2.14")])
def test_versions_are_read_as_release_lines(text, expected):
    assert str(ServerVersion.parse(text)) == expected


@pytest.mark.parametrize("text", ["2.9", "2.13", "2.18", "3.0", "2", "banana", "2.15.0.1", "2.x"])
def test_versions_kale_like_does_not_model_are_refused(text):
    with pytest.raises(KaleLikeError, match=r"is not a KFP server version kale_like supports") as error:
        ServerVersion.parse(text)
    assert "2.14, 2.15, 2.16, 2.17" in error.value.hint


def test_the_default_target_is_the_oldest_supported_release(run_cli, tmp_path):
    from kale_like.surfaces.api import load_graph

    assert str(DEFAULT) == SUPPORTED[0] == "2.14"
    assert load_graph(VERSIONS / "cached_oneof.py").settings.kfp_version == "2.14"


# ---------------------------------------------------------------------------------------------
# the checks, on real compiled pipelines


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_shape_is_refused_or_warned_exactly_where_the_table_says(run_cli, tmp_path, name):
    spec, platform = compiled_at_latest(run_cli, tmp_path, name)
    for version in SUPPORTED:
        refusals, warnings = check_for_server(spec, ServerVersion.parse(version), platform)
        got = ({f.feature.key for f in refusals}, {f.feature.key for f in warnings})
        assert got == EXPECTED[name].get(version, (set(), set())), (name, version)


@pytest.mark.parametrize("name, refused_on, passes_on, names", [
    ("artifact_oneof", "2.16", "2.17", ["'data' of 'size'", "'large', 'small'", "--kfp-version 2.17",
                                        "kubeflow/pipelines#13436", "-> float"]),
    ("nested_oneof", "2.16", "2.17", ["'value' of 'report'", "a nested pipeline ('twice')",
                                      "--kfp-version 2.17", "No successful task found"]),
    ("loop_in_exit", "2.14", "2.15", ["exit step 'notify'", "a loop ('for-loop-2')", "--kfp-version 2.15",
                                      "kubeflow/pipelines#12390"]),
])
def test_the_command_line_refuses_naming_the_task_and_the_fix(run_cli, tmp_path, name, refused_on, passes_on,
                                                             names):
    out = tmp_path / "out.yaml"
    refused = run_cli(VERSIONS / f"{name}.py", "--kfp", "-o", out, "--kfp-version", refused_on)
    assert refused.code == 2
    assert refused.err.startswith(f"error: {VERSIONS / name}.py: ")
    for text in names:
        assert text in refused.err
    assert not out.exists() and not (tmp_path / "out_kfp.py").exists()  # nothing written
    passed = run_cli(VERSIONS / f"{name}.py", "--kfp", "-o", out, "--kfp-version", passes_on)
    assert passed.code == 0, passed.err
    assert out.exists()


def test_the_default_target_refuses_what_2_14_cannot_run(run_cli, tmp_path):
    result = run_cli(VERSIONS / "loop_in_exit.py", "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 2
    assert "on KFP 2.14" in result.err


def test_warnings_are_printed_and_the_pipeline_is_written(run_cli, tmp_path):
    out = tmp_path / "out.yaml"
    result = run_cli(VERSIONS / "exit_around_if.py", "--kfp", "-o", out, "--kfp-version", "2.16")
    assert result.code == 0
    assert "warning: the exit step 'notify' reads the final status of a group holding an if" in result.err
    assert "on KFP 2.16" in result.err and "--kfp-version 2.17" in result.err
    assert out.exists()
    quiet = run_cli(VERSIONS / "exit_around_if.py", "--kfp", "-o", out, "--kfp-version", "2.17")
    assert quiet.code == 0 and "warning" not in quiet.err


def test_a_oneof_branch_ending_with_a_cached_step_is_a_warning_on_every_release(run_cli, tmp_path):
    """kfp's own compiler leaves each branch ending with a cached step: a re-run served from the cache
    marks no branch complete. kale_like's branches end with a generated uncached step instead."""
    path = kfp_compiled(tmp_path, "kfp_cached_oneof")
    spec = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))[0]
    for version in SUPPORTED:
        refusals, warnings = check_for_server(spec, ServerVersion.parse(version))
        assert not refusals and [f.feature.key for f in warnings] == ["cached_oneof"]
    assert "'total' of 'report' is set by the steps 'points', 'points-2'" in warnings[0].detail
    assert "cache:disabled" in warnings[0].hint
    ours = run_cli(VERSIONS / "cached_oneof.py", "--kfp", "-o", tmp_path / "ours.yaml")
    assert ours.code == 0 and "cache" not in ours.err


def test_kale_like_never_writes_the_optional_field_of_a_secret(run_cli, tmp_path):
    """kfp-kubernetes 2.15+ writes `optional: false` for every secret; kale_like leaves it out (the same
    meaning), so a pipeline with secrets runs on 2.14."""
    out = tmp_path / "out.yaml"
    result = run_cli(REPO / "tests" / "fixtures" / "production" / "secret_step.py", "--kfp", "-o", out,
                     "--kfp-version", "2.14")
    assert result.code == 0, result.err
    platform = list(yaml.safe_load_all(out.read_text(encoding="utf-8")))[1]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    secrets = [item for config in executors.values() for item in config.get("secretAsEnv", [])]
    assert secrets and all("optional" not in item for item in secrets)
    assert secrets[0]["secretName"] == "svc-creds"


def test_an_optional_secret_from_the_kfp_sdk_needs_2_15(run_cli, tmp_path):
    path = kfp_compiled(tmp_path, "kfp_optional_secret")
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    refusals, warnings = check_for_server(documents[0], ServerVersion.parse("2.14"), documents[1])
    assert [f.feature.key for f in refusals] == ["env_optional"] and not warnings
    assert "secret 'greetings'" in refusals[0].detail and "optional: true" in refusals[0].detail
    assert check_for_server(documents[0], ServerVersion.parse("2.15"), documents[1]) == ([], [])
    refused = run_cli(path, "--run", "--kfp-version", "2.14")  # refused before anything runs
    assert refused.code == 2
    assert "unknown field" in refused.err and "--kfp-version 2.15" in refused.err


# ---------------------------------------------------------------------------------------------
# where the version is set


def test_the_flag_overrides_the_pipelines_own_version(run_cli, tmp_path):
    source = tmp_path / "nested.py"
    text = (VERSIONS / "nested_oneof.py").read_text(encoding="utf-8")
    source.write_text(text.replace('@pipeline(name="nested-oneof")',
                                   '@pipeline(name="nested-oneof", kfp_version="2.17")'), encoding="utf-8")
    assert run_cli(source, "--kfp", "-o", tmp_path / "a.yaml").code == 0
    overridden = run_cli(source, "--kfp", "-o", tmp_path / "b.yaml", "--kfp-version", "2.16")
    assert overridden.code == 2 and "on KFP 2.16" in overridden.err


def test_notebook_metadata_sets_the_version_and_the_flag_overrides_it(run_cli, tmp_path, graph_json):
    assert run_cli(notebook_copy(tmp_path), "--kfp", "-o", tmp_path / "a.yaml").code == 2
    notebook = notebook_copy(tmp_path, "2.15")
    assert graph_json(notebook)["settings"]["kfp_version"] == "2.15"
    result = run_cli(notebook, "--kfp", "-o", tmp_path / "b.yaml")
    assert result.code == 0, result.err
    assert "metadata 'kfp_version'" not in result.err  # a known key: no "not supported" warning
    overridden = run_cli(notebook, "--kfp", "-o", tmp_path / "c.yaml", "--kfp-version", "2.14")
    assert overridden.code == 2 and "exit step 'exit-handler'" in overridden.err


@pytest.mark.parametrize("value", ["2.9", "latest", 3, True])
def test_a_bad_version_in_notebook_metadata_names_the_notebook_and_the_key(run_cli, tmp_path, value):
    notebook = notebook_copy(tmp_path, value)
    result = run_cli(notebook, "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 2
    assert result.err.startswith(f"error: {notebook}: notebook metadata 'kubeflow_notebook.kfp_version': ")
    assert "hint: use one of 2.14, 2.15, 2.16, 2.17" in result.err
    assert not (tmp_path / "out.yaml").exists()


@pytest.mark.parametrize("flag", ["2.13", "banana", "2.15.0.1"])
def test_a_bad_flag_value_exits_2_with_the_message(run_cli, tmp_path, flag):
    for args in (["--kfp", "-o", tmp_path / "out.yaml"], ["--run"]):
        result = run_cli(VERSIONS / "uncached_oneof.py", *args, "--kfp-version", flag)
        assert result.code == 2
        assert result.err.startswith(f"error: --kfp-version: {flag!r} is not a KFP server version")
    assert not (tmp_path / "out.yaml").exists()


def test_a_bad_pipeline_option_names_the_line_and_fails_the_import_too(run_cli, tmp_path):
    source = tmp_path / "bad_version.py"
    text = (VERSIONS / "uncached_oneof.py").read_text(encoding="utf-8")
    source.write_text(text.replace('@pipeline(name="uncached-oneof")',
                                   '@pipeline(name="uncached-oneof", kfp_version="2.0")'), encoding="utf-8")
    result = run_cli(source, "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 2
    assert re.match(rf"error: {re.escape(str(source))}:\d+:\d+: @pipeline\(kfp_version=\.\.\.\): '2\.0'", result.err)
    spec = importlib.util.spec_from_file_location("bad_version", source)
    with pytest.raises(ValueError, match=r"@pipeline\(kfp_version=\.\.\.\): '2.0' is not a KFP server version"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_the_pipeline_option_is_a_known_setting():
    from kale_like.sdk import PIPELINE_SETTINGS, pipeline

    assert "kfp_version" in PIPELINE_SETTINGS

    @pipeline(kfp_version="2.16")
    def fine():
        return None

    assert fine.__kale_like_pipeline__ == {"kfp_version": "2.16"}


# ---------------------------------------------------------------------------------------------
# local runs follow the version


@pytest.fixture
def captured_config(monkeypatch):
    """Replace the local runner: record the RunConfig a run was started with."""
    from kale_like.backends.local import run as local_run

    seen: list = []

    def fake_run(self, ir, arguments=None, observer=None):
        seen.append(self.config)
        return local_run.RunResult("run-1", ir.name, "SUCCEEDED", {}, [], Path("."))

    monkeypatch.setattr(local_run.LocalRun, "run", fake_run)  # what every way of running locally calls
    return seen


def test_the_command_line_run_follows_the_version(run_cli, captured_config, tmp_path):
    assert run_cli(VERSIONS / "uncached_oneof.py", "--run", "--kfp-version", "2.16").code == 0
    assert run_cli(VERSIONS / "uncached_oneof.py", "--run").code == 0
    assert [c.kfp_version for c in captured_config] == [ServerVersion(2, 16), ServerVersion(2, 14)]
    run_cli(VERSIONS / "uncached_oneof.py", "--kfp", "-o", tmp_path / "p.yaml", "-q")
    assert run_cli(tmp_path / "p.yaml", "--run", "--kfp-version", "v2.17.0").code == 0
    assert captured_config[-1].kfp_version == ServerVersion(2, 17)


def test_a_refused_shape_is_not_run_locally(run_cli, captured_config):
    result = run_cli(VERSIONS / "artifact_oneof.py", "--run")
    assert result.code == 2 and "on KFP 2.14" in result.err
    assert captured_config == []


def test_the_python_api_takes_the_version(captured_config, tmp_path):
    import kale_like

    kale_like.run(VERSIONS / "uncached_oneof.py", kfp_version="2.15", store=tmp_path / "store")
    kale_like.run(VERSIONS / "nested_oneof.py", kfp_version="2.17", store=tmp_path / "store")
    assert [c.kfp_version for c in captured_config] == [ServerVersion(2, 15), ServerVersion(2, 17)]
    with pytest.raises(KaleLikeError, match="kfp_version=: '1.8' is not a KFP server version"):
        kale_like.run(VERSIONS / "uncached_oneof.py", kfp_version="1.8")
    with pytest.raises(KaleLikeError, match="on KFP 2.14"):
        kale_like.run(VERSIONS / "nested_oneof.py")
    assert "artifactSelectors" in kale_like.compile(VERSIONS / "artifact_oneof.py", kfp_version="2.17")
    with pytest.raises(KaleLikeError, match="on KFP 2.16"):
        kale_like.compile(VERSIONS / "artifact_oneof.py", kfp_version="2.16")


def test_a_panel_run_follows_the_version(monkeypatch, captured_config, tmp_path, capsys):
    from kale_like.surfaces.server import run_worker

    source = tmp_path / "exit_around_if.py"
    shutil.copy(VERSIONS / "exit_around_if.py", source)
    spec = {"source": str(source), "params": {}, "store": str(tmp_path / "store"), "kfp_version": "2.16"}
    assert run_worker._run(spec) == 0
    started = json.loads(capsys.readouterr().out.splitlines()[0])
    assert captured_config[-1].kfp_version == ServerVersion(2, 16)
    assert any("on KFP 2.16" in w for w in started["warnings"])
    assert run_worker._run({**spec, "kfp_version": "2.17"}) == 0
    started = json.loads(capsys.readouterr().out.splitlines()[0])
    assert captured_config[-1].kfp_version == ServerVersion(2, 17)
    assert not any("KFP" in w for w in started["warnings"])


# ---------------------------------------------------------------------------------------------
# one table


def test_the_readme_shows_the_table_of_the_code():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "### Which KFP server versions" in readme
    assert server_checks.markdown_table() in readme


def test_every_feature_names_its_source_and_a_supported_release():
    for feature in FEATURES:
        assert feature.needs in (None, *SUPPORTED) and feature.reliable_from in (None, *SUPPORTED)
        assert "kubeflow/pipelines#" in feature.source or ".go" in feature.source


def test_the_panels_setting_offers_the_supported_versions():
    schema = json.loads((REPO / "labextension" / "schema" / "plugin.json").read_text(encoding="utf-8"))
    assert schema["properties"]["kfpVersion"]["enum"] == ["", *SUPPORTED]
