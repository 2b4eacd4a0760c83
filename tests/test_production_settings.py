"""Issue 5, step settings: each one given by the user is found in the compiled KFP IR.

Every per-step setting is checked from each place it can come from: a cell tag
(`tags_all.ipynb`, step `tagged`), a `@step(...)` argument (`step_settings.py`), and where a
pipeline-wide default exists, the notebook metadata (`defaults_meta.ipynb`: `steps_defaults`,
`base_image`, `enable_caching`, `pip_index_urls`) and the command line (`--image`,
`--pip-index-url`, `--disable-caching`). The IR is read as the kfp compiler wrote it: the first
YAML document is the PipelineSpec, the second (`platforms.kubernetes.deploymentSpec.executors`)
holds the Kubernetes-only settings. Fixtures: tests/fixtures/production/ (the notebooks come from
make_production_fixtures.py there).

Also here: the settings of one step do not leak into another, step tags beat pipeline-wide
defaults, the first IR document stays portable (no Kubernetes-only settings), every setting kind of
the tag grammar and every `@step` keyword is covered by these fixtures, and compiling twice gives
byte-identical output. Known defects are `xfail(strict=True)` with the reason starting "BUG:".
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import kale_like
from conftest import REPO, CompiledIR
from kale_like.frontends.tags import TAG_GRAMMAR, parse_tag
from kale_like.sdk import STEP_SETTINGS
from kale_like.surfaces.cli import main

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

PROD = Path(__file__).resolve().parent / "fixtures" / "production"


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_production_fixtures", PROD / "make_production_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixtures = _load_generator()  # the notebooks' definitions (ALL_SETTING_TAGS, ...)

TAGS_ALL = PROD / "tags_all.ipynb"
DEFAULTS_META = PROD / "defaults_meta.ipynb"
CLI_BASE = PROD / "cli_base.ipynb"
STEP_SETTINGS_PY = PROD / "step_settings.py"

# where a setting comes from -> (source, extra CLI args, the step that carries it)
TAG = "tag"
DECORATOR = "decorator"
STEPS_DEFAULTS = "steps_defaults"
SOURCES = {
    TAG: (TAGS_ALL, (), "tagged"),
    DECORATOR: (STEP_SETTINGS_PY, (), "tagged"),
    STEPS_DEFAULTS: (DEFAULTS_META, (), "first"),
}


@pytest.fixture
def setting(compile_notebook):
    """`setting(origin) -> (CompiledIR, step)`, origin one of SOURCES."""

    def get(origin: str) -> tuple[CompiledIR, str]:
        path, args, step = SOURCES[origin]
        return compile_notebook(path, *args), step

    return get


def resources(ir: CompiledIR, step: str) -> dict:
    return ir.container(step).get("resources", {})


def env_of(ir: CompiledIR, step: str) -> dict[str, str]:
    pairs = [(e["name"], e["value"]) for e in ir.container(step).get("env", [])]
    assert len(pairs) == len(dict(pairs)), f"duplicate env names: {pairs}"
    return dict(pairs)


def own_install(ir: CompiledIR, step: str) -> str:
    """The step's own `pip install ...` (before the kfp runtime's install)."""
    return ir.install_command(step).split("&&", 1)[0]


# ---------------------------------------------------------------------------
# Image


@pytest.mark.parametrize("origin, image", [
    (TAG, "registry.example/tagged:1.2"),
    (DECORATOR, "registry.example/decorated:2.0"),
    (STEPS_DEFAULTS, "registry.example/base:3.0"),  # metadata base_image
])
def test_image(setting, origin, image):
    ir, step = setting(origin)
    assert ir.container(step)["image"] == image


def test_image_pipeline_wide_from_cli_overrides_base_image_not_step_tag(compile_notebook):
    plain = compile_notebook(CLI_BASE)
    assert plain.container("first")["image"] == "registry.example/base:3.0"
    flagged = compile_notebook(CLI_BASE, "--image", "cli.example/img:7")
    assert flagged.container("first")["image"] == "cli.example/img:7"
    assert flagged.container("pinned")["image"] == "registry.example/pinned:1"
    decorated = compile_notebook(STEP_SETTINGS_PY, "--image", "cli.example/img:7")
    assert decorated.container("plain")["image"] == "cli.example/img:7"
    assert decorated.container("tagged")["image"] == "registry.example/decorated:2.0"


def test_image_default_when_nothing_is_given(compile_notebook):
    assert compile_notebook(TAGS_ALL).container("plain")["image"] == "python:3.11"


# ---------------------------------------------------------------------------
# Extra packages and the package index


@pytest.mark.parametrize("origin, packages", [
    (TAG, {"requests", "pyyaml"}),
    (DECORATOR, {"requests", "pyyaml"}),
    (STEPS_DEFAULTS, {"pyyaml"}),
])
def test_extra_packages(setting, origin, packages):
    ir, step = setting(origin)
    assert packages <= ir.packages(step), own_install(ir, step)


def test_pip_index_urls_from_notebook_metadata(compile_notebook):
    ir = compile_notebook(DEFAULTS_META)
    for step in ("first", "second"):
        install = own_install(ir, step)
        assert "--index-url https://pypi.internal.example/simple" in install
        assert "--extra-index-url https://mirror.internal.example/simple" in install


def test_pip_index_url_from_cli_overrides_metadata(compile_notebook):
    ir = compile_notebook(CLI_BASE, "--pip-index-url", "https://cli.example/simple")
    for step in ("first", "pinned"):
        install = own_install(ir, step)
        assert "--index-url https://cli.example/simple" in install
        assert "meta.example" not in ir.install_command(step)
    assert "--index-url https://meta.example/simple" in own_install(compile_notebook(CLI_BASE), "first")


def test_pip_index_urls_from_cli_for_a_python_pipeline(compile_notebook):
    ir = compile_notebook(STEP_SETTINGS_PY, "--pip-index-url", "https://a.example/simple",
                          "--pip-index-url", "https://b.example/simple")
    for step in ("tagged", "limited", "default_gpu", "plain"):
        install = own_install(ir, step)
        assert "--index-url https://a.example/simple" in install
        assert "--extra-index-url https://b.example/simple" in install


# ---------------------------------------------------------------------------
# CPU and memory


@pytest.mark.parametrize("origin, cpu, memory", [
    (TAG, "250m", "256Mi"),
    (STEPS_DEFAULTS, "100m", "128Mi"),
])
def test_cpu_memory_requests(setting, origin, cpu, memory):
    ir, step = setting(origin)
    found = resources(ir, step)
    assert found.get("resourceCpuRequest") == cpu, found
    assert found.get("resourceMemoryRequest") == memory, found


def test_cpu_memory_requests_from_decorator(tmp_path, compile_notebook):
    source = tmp_path / "requests.py"
    source.write_text(textwrap.dedent("""\
        from kale_like import pipeline, step

        @step(requests={"cpu": "250m", "memory": "256Mi"})
        def work(n: int):
            print(n)

        @pipeline(name="requests")
        def requests_pipeline(n: int = 1):
            work(n)
        """), encoding="utf-8")
    found = resources(compile_notebook(source), "work")
    assert (found.get("resourceCpuRequest"), found.get("resourceMemoryRequest")) == ("250m", "256Mi")


@pytest.mark.parametrize("origin, step, cpu, memory", [
    (TAG, "tagged", "1", "1Gi"),
    (DECORATOR, "tagged", "500m", "2Gi"),  # cpu=, memory=
    (DECORATOR, "limited", "2", "4Gi"),  # limits={}
    (STEPS_DEFAULTS, "first", "2", "512Mi"),
    (STEPS_DEFAULTS, "second", "4", "512Mi"),  # limit:cpu:4 on the step beats the default
])
def test_cpu_memory_limits(setting, origin, step, cpu, memory):
    ir, _ = setting(origin)
    found = resources(ir, step)
    assert found.get("resourceCpuLimit") == cpu, found
    assert found.get("resourceMemoryLimit") == memory, found


# ---------------------------------------------------------------------------
# GPU


@pytest.mark.parametrize("origin, step, kind, count", [
    (TAG, "tagged", "nvidia.com/gpu", "2"),
    (DECORATOR, "tagged", "amd.com/gpu", "2"),  # gpu=2, gpu_type=
    (DECORATOR, "default_gpu", "nvidia.com/gpu", "1"),  # gpu=1
    (DECORATOR, "limited", "nvidia.com/gpu", "1"),  # limits={"nvidia.com/gpu": 1}
    (STEPS_DEFAULTS, "first", "nvidia.com/gpu", "1"),
])
def test_gpu_type_and_count(setting, origin, step, kind, count):
    ir, _ = setting(origin)
    accelerator = resources(ir, step).get("accelerator", {})
    assert (accelerator.get("resourceType"), accelerator.get("resourceCount")) == (kind, count), accelerator


# ---------------------------------------------------------------------------
# Retries, caching


@pytest.mark.parametrize("origin, step, retries", [
    (TAG, "tagged", 3),
    (DECORATOR, "tagged", 3),
    (STEPS_DEFAULTS, "first", 2),
    (STEPS_DEFAULTS, "second", 5),
])
def test_retries(setting, origin, step, retries):
    ir, _ = setting(origin)
    assert ir.task(step)["retryPolicy"]["maxRetryCount"] == retries


def test_no_retry_policy_when_none_is_asked(compile_notebook):
    assert "retryPolicy" not in compile_notebook(TAGS_ALL).task("plain")


def cache_enabled(ir: CompiledIR, step: str) -> bool:
    return bool(ir.task(step).get("cachingOptions", {}).get("enableCache", False))


@pytest.mark.parametrize("origin, step, enabled", [
    (TAG, "tagged", False),  # cache:disabled
    (TAG, "plain", True),  # KFP's default
    (DECORATOR, "tagged", False),  # cache=False
    (DECORATOR, "limited", True),  # cache=True
    (STEPS_DEFAULTS, "first", False),  # metadata enable_caching: false
    (STEPS_DEFAULTS, "second", True),  # cache:enabled beats it
])
def test_caching(setting, origin, step, enabled):
    ir, _ = setting(origin)
    assert cache_enabled(ir, step) is enabled


def test_caching_pipeline_wide_from_cli(compile_notebook):
    assert cache_enabled(compile_notebook(CLI_BASE), "first")
    flagged = compile_notebook(CLI_BASE, "--disable-caching")
    assert not cache_enabled(flagged, "first")
    assert cache_enabled(flagged, "pinned")  # cache:enabled on the step wins
    decorated = compile_notebook(STEP_SETTINGS_PY, "--disable-caching")
    assert not cache_enabled(decorated, "plain")
    assert cache_enabled(decorated, "limited")


# ---------------------------------------------------------------------------
# Environment variables


@pytest.mark.parametrize("origin, step, env", [
    (TAG, "tagged", {"MODE": "prod", "REGION": "eu-west-1"}),
    (DECORATOR, "tagged", {"MODE": "prod", "REGION": "eu-west-1"}),
    (STEPS_DEFAULTS, "first", {"STAGE": "default"}),
    (STEPS_DEFAULTS, "second", {"STAGE": "override"}),  # once, with the step's value
])
def test_env_vars(setting, origin, step, env):
    ir, _ = setting(origin)
    assert env_of(ir, step) == env


def test_env_vars_reach_the_step_in_a_local_run(tmp_path, monkeypatch):
    monkeypatch.delenv("KL_TEST_MODE", raising=False)
    monkeypatch.setenv("KALE_LIKE_LOCAL_RUN", "")  # restored afterwards: the runner sets it
    source = tmp_path / "env_pipeline.py"
    source.write_text(textwrap.dedent("""\
        import os
        from kale_like import pipeline, step

        @step(env={"KL_TEST_MODE": "prod"})
        def read_mode() -> str:
            return os.environ.get("KL_TEST_MODE", "<unset>")

        @step
        def show(mode: str):
            print(mode)

        @pipeline(name="env-pipeline")
        def env_pipeline():
            mode = read_mode()
            show(mode)
        """), encoding="utf-8")
    result = kale_like.run(source, backend="thread", store=tmp_path / "store", echo=False, max_workers=1)
    assert result.succeeded, result.error
    assert result.value("read_mode") == "prod"


# ---------------------------------------------------------------------------
# Kubernetes-only settings (second YAML document)


@pytest.mark.parametrize("origin, labels", [
    (TAG, {"pool": "gpu-a"}),
    (DECORATOR, {"pool": "gpu-b"}),
    (STEPS_DEFAULTS, {"pool": "batch"}),
])
def test_node_selector(setting, origin, labels):
    ir, step = setting(origin)
    assert ir.kubernetes(step)["nodeSelector"]["labels"] == labels


TAGGED_TOLERATIONS = [
    {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"},
    {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
]


@pytest.mark.parametrize("origin, tolerations", [
    (TAG, TAGGED_TOLERATIONS),
    (DECORATOR, TAGGED_TOLERATIONS),
    (STEPS_DEFAULTS, [{"key": "spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]),
])
def test_tolerations(setting, origin, tolerations):
    ir, step = setting(origin)
    assert ir.kubernetes(step)["tolerations"] == tolerations


@pytest.mark.parametrize("origin, seconds", [(TAG, 600), (DECORATOR, 900), (STEPS_DEFAULTS, 1200)])
def test_timeout(setting, origin, seconds):
    ir, step = setting(origin)
    assert int(ir.kubernetes(step)["activeDeadlineSeconds"]) == seconds


@pytest.mark.parametrize("origin, step, labels", [
    (TAG, "tagged", {"owner": "alice"}),
    (DECORATOR, "tagged", {"owner": "bob"}),
    (STEPS_DEFAULTS, "first", {"team": "ml"}),
    (STEPS_DEFAULTS, "second", {"team": "override"}),
])
def test_pod_labels(setting, origin, step, labels):
    ir, _ = setting(origin)
    assert ir.kubernetes(step)["podMetadata"]["labels"] == labels


@pytest.mark.parametrize("origin, annotations", [
    (TAG, {"note": "hello world"}),
    (DECORATOR, {"note": "hello world"}),
    (STEPS_DEFAULTS, {"owner": "data-team"}),
])
def test_pod_annotations(setting, origin, annotations):
    ir, step = setting(origin)
    assert ir.kubernetes(step)["podMetadata"]["annotations"] == annotations


@pytest.mark.parametrize("origin, secret, key, env", [
    (TAG, "db-creds", "password", "DB_PASSWORD"),
    (DECORATOR, "db-creds", "password", "DB_PASSWORD"),
    (STEPS_DEFAULTS, "shared-creds", "token", "SHARED_TOKEN"),
])
def test_secrets_as_env(setting, origin, secret, key, env):
    ir, step = setting(origin)
    [entry] = ir.kubernetes(step)["secretAsEnv"]
    assert entry["secretName"] == secret
    assert entry["keyToEnv"] == [{"secretKey": key, "envVar": env}]


# ---------------------------------------------------------------------------
# Display names and task names


@pytest.mark.parametrize("origin, display", [(TAG, "Load-Data"), (DECORATOR, "Load-It")])
def test_display_name(setting, origin, display):
    ir, step = setting(origin)
    assert ir.task(step)["taskInfo"]["name"] == display


def test_step_name_from_decorator_names_the_task(compile_notebook):
    ir = compile_notebook(STEP_SETTINGS_PY)
    assert "tagged" in ir.tasks and "load" not in ir.tasks  # @step(name="tagged") def load(...)
    assert ir.task("plain")["taskInfo"]["name"] == "plain"


# ---------------------------------------------------------------------------
# Scope, precedence, portability


def test_settings_of_one_step_do_not_reach_another(compile_notebook):
    ir = compile_notebook(TAGS_ALL)
    assert ir.kubernetes("plain") == {}
    assert "resources" not in ir.container("plain")
    assert "env" not in ir.container("plain")
    assert ir.task("plain")["taskInfo"]["name"] == "plain"
    assert cache_enabled(ir, "plain")


def test_step_defaults_reach_every_step(compile_notebook):
    ir = compile_notebook(DEFAULTS_META)
    for step in ("first", "second"):
        assert ir.kubernetes(step)["secretAsEnv"][0]["secretName"] == "shared-creds"
        assert ir.kubernetes(step)["nodeSelector"]["labels"] == {"pool": "batch"}
        assert int(ir.kubernetes(step)["activeDeadlineSeconds"]) == 1200
        assert resources(ir, step)["resourceMemoryRequest"] == "128Mi"


@pytest.mark.parametrize("origin", [TAG, DECORATOR, STEPS_DEFAULTS])
def test_kubernetes_only_settings_stay_out_of_the_portable_document(setting, origin):
    ir, _ = setting(origin)
    spec = json.loads(json.dumps(ir.spec))
    for executor in spec["deploymentSpec"]["executors"].values():
        executor["container"].pop("command")  # the step's code, free text
    portable = yaml.safe_dump(spec)
    assert "registry.example" in portable  # the images: the dump does hold what every KFP backend reads
    for text in ("db-creds", "shared-creds", "gpu-a", "gpu-b", "batch", "dedicated", "spot", "alice", "bob",
                 "hello world", "data-team", "activeDeadlineSeconds", "secretAsEnv", "tolerations"):
        assert text not in portable, text


# ---------------------------------------------------------------------------
# Coverage of the setting vocabulary by these fixtures

STRUCTURAL_TAGS = {"imports", "functions", "pipeline-parameters", "pipeline-metrics", "skip", "step", "exit-handler",
                   "prev", "foreach", "parallelism", "when", "report"}
TESTED_TAG_KINDS = {"image", "packages", "request", "limit", "retries", "cache", "env", "node", "toleration",
                    "timeout", "label", "annotation", "display", "secret"}
TESTED_STEP_SETTINGS = {"name", "image", "packages", "retries", "cpu", "memory", "gpu", "gpu_type", "cache",
                        "secrets", "env", "labels", "annotations", "limits", "timeout", "node_selector",
                        "tolerations", "display_name", "requests", "retry_backoff"}


def test_every_setting_tag_kind_is_tested_and_in_the_fixture():
    assert set(TAG_GRAMMAR) - STRUCTURAL_TAGS == TESTED_TAG_KINDS
    assert {parse_tag(tag).kind for tag in fixtures.ALL_SETTING_TAGS} == TESTED_TAG_KINDS


def test_every_step_setting_is_tested_and_in_the_fixture():
    assert set(STEP_SETTINGS) == TESTED_STEP_SETTINGS
    used = set()
    for node in ast.walk(ast.parse(STEP_SETTINGS_PY.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "step":
            used |= {keyword.arg for keyword in node.keywords}
    assert used == TESTED_STEP_SETTINGS


def test_production_notebooks_are_current():
    assert fixtures.main(["--check"]) == 0, "run tests/fixtures/production/make_production_fixtures.py"


# ---------------------------------------------------------------------------
# Determinism (GitOps: compile on merge and diff)

DETERMINISM_SOURCES = [TAGS_ALL, DEFAULTS_META, STEP_SETTINGS_PY, PROD / "secret_step.py", PROD / "exit_handler.py"]


def _compile_to(folder: Path, source: Path, *args: str) -> tuple[bytes, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "pipeline.yaml"
    assert main([str(source), "--kfp", "-o", str(out), "-q", *args]) == 0
    return out.read_bytes(), (folder / "pipeline_kfp.py").read_bytes()


@pytest.mark.parametrize("source", DETERMINISM_SOURCES, ids=lambda p: p.name)
def test_compiling_twice_gives_identical_bytes(tmp_path, source, monkeypatch):
    monkeypatch.setenv("KALE_LIKE_COMPILE_CACHE", "0")  # kfp compiles each time: determinism, not the cache
    first = _compile_to(tmp_path / "a", source)
    second = _compile_to(tmp_path / "b", source)
    assert first[0] == second[0]
    assert first[1] == second[1]
    documents = list(yaml.safe_load_all(first[0]))
    assert len(documents) == 2  # the platform document (secrets, tolerations, ...) is part of what is compared


_HASH_SCRIPT = """
import hashlib, json, sys
from pathlib import Path
from kale_like.surfaces.cli import main
out = Path(sys.argv[1])
digests = {}
for index, source in enumerate(sys.argv[2:]):
    target = out / f"p{index}.yaml"
    assert main([source, "--kfp", "-o", str(target), "-q"]) == 0
    digests[Path(source).name] = [hashlib.sha256(target.read_bytes()).hexdigest(),
                                  hashlib.sha256(target.with_name(f"p{index}_kfp.py").read_bytes()).hexdigest()]
print(json.dumps(digests))
"""


@pytest.mark.slow
def test_identical_bytes_across_processes_hash_seeds_and_working_directories(tmp_path):
    """Two fresh interpreters (different PYTHONHASHSEED, working directory) write the same bytes."""
    results = []
    for seed, cwd in (("0", tmp_path), ("4242", REPO)):
        out = tmp_path / f"out-{seed}"
        out.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": seed, "KALE_LIKE_COMPILE_CACHE": "0"}  # each compiles
        sources = [str(TAGS_ALL), str(PROD / "exit_handler.py")]  # secrets, tolerations, exit handler
        done = subprocess.run([sys.executable, "-c", _HASH_SCRIPT, str(out), *sources], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert results[0] == results[1]


def test_relative_source_path_records_the_dirty_flag(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "pipelines").mkdir(parents=True)
    source = repo / "pipelines" / "exit_handler.py"
    source.write_bytes((PROD / "exit_handler.py").read_bytes())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-q", "-m", "x"], check=True)
    with source.open("a", encoding="utf-8") as handle:
        handle.write("\n# an uncommitted change\n")
    monkeypatch.chdir(repo)
    by_relative = _compile_to(tmp_path / "rel", Path("pipelines/exit_handler.py"))[0]
    by_absolute = _compile_to(tmp_path / "abs", source)[0]
    programs = json.dumps(next(yaml.safe_load_all(by_absolute))["deploymentSpec"])  # YAML wraps long lines
    assert "'git_dirty': 'true'" in programs
    assert by_relative == by_absolute



# ---------------------------------------------------------------------------
# Exit handler: @pipeline(on_exit=notify)

EXIT_HANDLER = PROD / "exit_handler.py"


def assert_exit_handler(ir: CompiledIR, exit_task: str, status: str) -> dict:
    """The pipeline is `exit_task` and a KFP ExitHandler holding every step; `exit_task` runs after it
    whatever happened and receives its final status as `status`. The exit task."""
    root = ir.tasks
    assert set(root) == {"exit-handler-1", exit_task}
    handler = root["exit-handler-1"]
    body = ir.spec["components"][handler["componentRef"]["name"]]["dag"]["tasks"]
    # a generated uncached step ends the group: a cache hit never marks it complete, so a re-run served
    # from the cache would read RUNNING (kale_like/lowering/exit_state.py)
    assert set(body) == {"work", "after-work", "all-done"}
    assert body["all-done"]["dependentTasks"] == ["after-work"]
    assert body["all-done"]["cachingOptions"] == {}
    task = root[exit_task]
    assert task["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert task["dependentTasks"] == ["exit-handler-1"]
    assert task["inputs"]["parameters"][status] == {"taskFinalStatus": {"producerTask": "exit-handler-1"}}
    component = ir.spec["components"][task["componentRef"]["name"]]
    assert component["inputDefinitions"]["parameters"][status]["parameterType"] == "TASK_FINAL_STATUS"
    return task


def test_exit_handler_compiles_to_a_kfp_exit_handler(compile_notebook):
    assert_exit_handler(compile_notebook(EXIT_HANDLER), "notify", "status")


def _status_line(log_path: str) -> dict:
    lines = [line for line in Path(log_path).read_text(encoding="utf-8").splitlines() if "KL_STATUS=" in line]
    assert len(lines) == 1, lines
    return json.loads(lines[0].split("KL_STATUS=", 1)[1])


@pytest.fixture
def local_env(monkeypatch):
    monkeypatch.setenv("KALE_LIKE_LOCAL_RUN", "")  # the runner sets it in this process; restore it afterwards


def test_exit_handler_runs_locally_and_sees_success(tmp_path, local_env):
    result = kale_like.run(EXIT_HANDLER, backend="thread", store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error
    statuses = {t.label: t.status for t in result.tasks}
    assert statuses == {"work": "done", "after-work": "done", "all-done": "done", "notify": "done"}
    assert [t.label for t in result.tasks][-1] == "notify"  # it runs after everything else
    status = _status_line(result.task("notify").log_path)
    assert status["state"] == "SUCCEEDED"
    assert status["error_message"] is None  # a KFP driver sends an empty error (driver/resolve.go TaskFinalStatus)


def test_exit_handler_runs_locally_and_sees_the_failure(tmp_path, local_env, capsys):
    store = tmp_path / "store"
    code = main([str(EXIT_HANDLER), "--run", "--param", "fail=true", "--backend", "thread", "--store", str(store),
                 "--max-workers", "2", "-q"])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    [run] = list((store / "runs").iterdir())
    status = _status_line(str(run / "logs" / "notify.log"))
    assert status["state"] == "FAILED"
    assert status["error_message"] is None  # a KFP driver sends no error message (driver/resolve.go TaskFinalStatus)
    assert (run / "logs" / "work.log").exists()
    assert not (run / "logs" / "after-work.log").exists()  # the body stopped at the failure


def test_exit_handler_runs_again_on_a_cached_rerun(tmp_path, local_env):
    store = tmp_path / "store"
    kale_like.run(EXIT_HANDLER, backend="thread", store=store, echo=False)
    again = kale_like.run(EXIT_HANDLER, backend="thread", store=store, echo=False)
    assert again.task("work").status == "cached"
    assert again.task("notify").status == "done"


# ---------------------------------------------------------------------------
# Exit handler: the exit-handler cell of a notebook

EXIT_CELL = PROD / "exit_handler_cell.ipynb"


def test_the_exit_handler_cell_compiles_to_a_kfp_exit_handler_around_the_pipeline(compile_notebook):
    ir = compile_notebook(EXIT_CELL)
    task = assert_exit_handler(ir, "exit-handler", "pipeline_status")
    assert task["inputs"]["parameters"]["label"] == {"componentInputParameter": "label"}  # parameters reach it
    assert "artifacts" not in task["inputs"]  # no step's values
    assert env_of(ir, "exit_handler") == {"MODE": "final"}  # its own settings tags apply
    assert task["retryPolicy"]["maxRetryCount"] == 1
    assert "KL_LABEL=" in ir.program("exit_handler")  # the untagged cell after it continues it


def test_the_exit_handler_cell_is_in_the_graph_but_not_in_the_body():
    from kale_like.surfaces.api import load_graph

    graph = load_graph(EXIT_CELL)
    assert [s.name for s in graph.steps] == ["work", "after_work"]
    assert graph.exit_step.name == "exit_handler"
    assert graph.exit_step.inputs[0].name == "pipeline_status"
    assert graph.exit_step.inputs[0].ref.kind == "final_status"


def test_the_graph_json_shows_the_exit_handler(run_cli):
    document = json.loads(run_cli(EXIT_CELL, "--graph-json", "-q").out)
    assert document["exit_step"]["name"] == "exit_handler"
    assert [i["name"] for i in document["exit_step"]["inputs"]][0] == "pipeline_status"
    assert "exit_handler" not in [s["name"] for s in document["steps"]]


def test_the_summary_lists_the_exit_handler_last(run_cli):
    # step rows are indented by exactly two spaces (stray whitespace from another test's thread has been
    # seen in front of the header line under xdist; it must not count as a row)
    out = run_cli(EXIT_CELL, "-q").out
    rows = [line.split(None, 1) for line in out.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert [(name, text.strip()) for name, text in rows] == [
        ("work", "after: -"), ("after_work", "after: work"),
        ("exit_handler", "last, whatever happened (exit handler)")], repr(out)


def test_the_exit_handler_cell_runs_locally_after_a_succeeding_pipeline(tmp_path, local_env, capsys):
    store = tmp_path / "store"
    code = main([str(EXIT_CELL), "--run", "--backend", "thread", "--store", str(store), "-q"])
    assert code == 0, capsys.readouterr().err
    [run] = list((store / "runs").iterdir())
    status = _status_line(str(run / "logs" / "exit-handler.log"))
    assert status["state"] == "SUCCEEDED"
    assert status["error_code"] is None and status["error_message"] is None  # a KFP driver sends an empty error
    assert "KL_LABEL=nightly" in (run / "logs" / "exit-handler.log").read_text(encoding="utf-8")


def test_python_m_kale_like_runs_the_exit_handler_cell_after_a_failing_pipeline(tmp_path):
    store = tmp_path / "store"
    result = subprocess.run([sys.executable, "-m", "kale_like", str(EXIT_CELL), "--run", "--param", "fail=true",
                             "--param", "label=failing", "--store", str(store), "--max-workers", "2"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env={**os.environ, "KALE_LIKE_LOCAL_RUN": ""})
    assert result.returncode == 1, result.stderr
    [run] = list((store / "runs").iterdir())
    log = run / "logs" / "exit-handler.log"
    status = _status_line(str(log))
    assert status["state"] == "FAILED"
    assert status["error_message"] is None  # a KFP driver sends no error message
    assert "KL_LABEL=failing" in log.read_text(encoding="utf-8")
    assert not (run / "logs" / "after_work.log").exists() and not (run / "logs" / "after-work.log").exists()
    summary = result.stdout.splitlines()
    assert [line.split()[:2] for line in summary if line.startswith("exit_handler ")] == [["exit_handler", "done"]]


def _exit_notebook(tmp_path: Path, cells: list[tuple[str, list[str]]]) -> Path:
    path = tmp_path / "exit_cases.ipynb"
    path.write_text(fixtures.nbformat.writes(fixtures.build("exit-cases", None, cells)), encoding="utf-8")
    return path


LOAD = ("x = 1", ["step:load"])
STATUS = ("print(pipeline_status)", ["exit-handler"])

EXIT_CELL_ERRORS = {
    "two exit-handler cells": (
        [LOAD, STATUS, ("print('again')", ["exit-handler"])],
        "cell 3: a second exit-handler cell (the first is cell 2)", "untagged cells after the exit-handler cell"),
    "also a step": (
        [LOAD, ("print(pipeline_status)", ["exit-handler", "step:notify"])],
        "cell 2: the exit-handler cell is also tagged 'step:notify': the exit handler is not a step",
        "remove 'step:notify'"),
    "prev on the exit cell": (
        [LOAD, ("print(pipeline_status)", ["exit-handler", "prev:load"])],
        "cell 2: 'prev:load' on the exit-handler cell: the exit handler already runs after every step",
        "remove 'prev:load'"),
    "a loop on the exit cell": (
        [("xs = [1, 2]", ["step:load"]), ("print(pipeline_status)", ["exit-handler", "foreach:x:xs"])],
        "cell 2: 'foreach:x:xs' on the exit-handler cell", "remove 'foreach:x:xs'"),
    "a step after the exit handler": (
        [LOAD, STATUS, ("y = 2", ["step:later", "prev:exit_handler"])],
        "cell 3: step 'later' cannot run after the exit handler (prev:exit_handler)", "remove prev:exit_handler"),
    "a step reading the exit handler's value": (
        [LOAD, ("summary = str(pipeline_status)", ["exit-handler"]), ("print(summary)", ["step:later"])],
        "cell 3 (step later):1:7: step 'later' reads 'summary', which only the exit-handler cell assigns",
        "assign 'summary' in a step"),
    "the exit handler reading a step's value": (
        [LOAD, ("print(x, pipeline_status)", ["exit-handler"])],
        "cell 2 (step exit_handler):1:7: the exit-handler cell reads 'x', which step 'load' makes",
        "it sees pipeline_status, the pipeline parameters, imports and functions"),
    "an undefined name": (
        [LOAD, ("print(nothing)", ["exit-handler"])],
        "cell 2 (step exit_handler):1:7: name 'nothing' is not defined for the exit-handler cell",
        "it sees pipeline_status"),
    "a step named like the exit handler": (
        [("x = 1", ["step:exit_handler"]), STATUS],
        "cell 2 (step exit_handler): a step is named 'exit_handler'", "rename the step"),
}


@pytest.mark.parametrize("case", EXIT_CELL_ERRORS)
def test_exit_handler_cell_errors_name_the_cell_and_what_to_do(run_cli, tmp_path, case):
    cells, message, hint = EXIT_CELL_ERRORS[case]
    result = run_cli(_exit_notebook(tmp_path, cells), "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 2, result.err
    lines = result.err.splitlines()
    assert lines[0] == f"error: {tmp_path / 'exit_cases.ipynb'}:{message}" or lines[0].startswith(
        f"error: {tmp_path / 'exit_cases.ipynb'}:{message}"), result.err  # file, cell, what is wrong
    assert lines[1].startswith("  hint: ") and hint in lines[1], result.err  # what to do
    assert len(lines) == 2 and not (tmp_path / "out.yaml").exists()


# ---------------------------------------------------------------------------
# Service account: pipeline-wide only (KFP sets it per run; kfp-kubernetes has no per-task setter)


def _notebook_with(tmp_path: Path, kubeflow: dict | None, cells: list[tuple[str, list[str]]]) -> Path:
    path = tmp_path / "accounts.ipynb"
    path.write_text(fixtures.nbformat.writes(fixtures.build("accounts", kubeflow, cells)), encoding="utf-8")
    return path


def test_the_notebook_metadata_service_account_is_carried_in_the_graph_not_the_ir(tmp_path, run_cli):
    from kale_like.surfaces.api import load_graph

    source = _notebook_with(tmp_path, {"service_account": "pipeline-runner"}, [("x = 1", ["step:only"])])
    assert load_graph(source).settings.service_account == "pipeline-runner"
    result = run_cli(source, "--kfp", "-o", tmp_path / "out.yaml", "-q")
    assert result.code == 0, result.err
    assert "pipeline-runner" not in (tmp_path / "out.yaml").read_text(encoding="utf-8")


def test_a_pipeline_functions_service_account_is_carried_in_the_graph(tmp_path):
    from kale_like.surfaces.api import load_graph

    source = tmp_path / "accounts.py"
    source.write_text(textwrap.dedent("""
        from kale_like import pipeline, step

        @step
        def hello():
            print("hello")

        @pipeline(service_account="pipeline-runner")
        def accounts():
            hello()
        """), encoding="utf-8")
    assert load_graph(source).settings.service_account == "pipeline-runner"


SERVICE_ACCOUNT_REFUSALS = {
    "tag": (None, ["step:only", "service-account:runner"], "cell 1: 'service-account:runner': "),
    "steps_defaults": ({"steps_defaults": ["service_account:runner"]}, ["step:only"],
                       "'service_account:runner' in notebook metadata steps_defaults: "),
}


@pytest.mark.parametrize("case", SERVICE_ACCOUNT_REFUSALS)
def test_a_per_step_service_account_is_refused_saying_kfp_sets_it_per_run(tmp_path, run_cli, case):
    kubeflow, tags, where = SERVICE_ACCOUNT_REFUSALS[case]
    result = run_cli(_notebook_with(tmp_path, kubeflow, [("x = 1", tags)]), "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 2
    assert where + "KFP sets the service account per run" in result.err, result.err
    assert "kubeflow_notebook.service_account" in result.err and "--service-account" in result.err


def test_a_step_decorator_service_account_is_refused_saying_kfp_sets_it_per_run(tmp_path, run_cli):
    source = tmp_path / "step_account.py"
    source.write_text("from kale_like import pipeline, step\n\n\n@step(service_account='runner')\ndef hello():\n"
                      "    print('hello')\n\n\n@pipeline\ndef accounts():\n    hello()\n", encoding="utf-8")
    result = run_cli(source, "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 2
    assert "step_account.py:4:7: @step(service_account=...): KFP sets the service account per run" in result.err
    assert "@pipeline(service_account=...)" in result.err
    with pytest.raises(TypeError, match="KFP sets the service account per run"):
        kale_like.step(service_account="runner")  # the decorator, run as plain Python


@pytest.mark.parametrize("account", ["Pipeline-Runner", "runner/admin", 7])
def test_an_invalid_service_account_is_refused(tmp_path, run_cli, account):
    source = _notebook_with(tmp_path, {"service_account": account}, [("x = 1", ["step:only"])])
    result = run_cli(source, "--kfp", "-o", tmp_path / "out.yaml")
    assert result.code == 2
    assert f"notebook metadata 'service_account' {account!r} is not a Kubernetes service account name" in result.err
