"""Shared fixtures for the notebook -> KFP tests.

Notebooks come from tests/fixtures/notebooks/ (regenerate with tests/fixtures/make_fixtures.py).
Compilation goes through the CLI entry point in-process (`kale_like.surfaces.cli.main`), so every
test sees what a user of `python -m kale_like` sees. `CompiledIR` reads the two YAML documents the
kfp compiler writes (the PipelineSpec and the optional `platforms:` document) by step name.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kale_like.surfaces.cli import main

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FIXTURES = TESTS / "fixtures" / "notebooks"
EXAMPLES = REPO / "examples" / "notebooks"


def _peer_cases() -> Path:
    """Kubeflow Kale's own example notebooks (not vendored): $KALE_LIKE_PEER_CASES, or the first
    `shared/peer-cases/kale` folder beside the repository or beside one of its parent folders.
    Tests that need them skip when there is none."""
    if os.environ.get("KALE_LIKE_PEER_CASES"):
        return Path(os.environ["KALE_LIKE_PEER_CASES"])
    candidates = [folder / "shared" / "peer-cases" / "kale" for folder in REPO.parents]
    return next((c for c in candidates if c.is_dir()), candidates[0])


KALE_CASES = _peer_cases()


def fixture_notebook(name: str) -> Path:
    """The path of a fixture notebook, by its file stem."""
    path = FIXTURES / f"{name}.ipynb"
    assert path.exists(), f"missing fixture {path}; run tests/fixtures/make_fixtures.py"
    return path


def task_name(step: str) -> str:
    """The KFP task (and component/executor suffix) name of a notebook step."""
    return step.replace("_", "-")


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


class CompiledIR:
    """A compiled pipeline YAML, queried by notebook step name."""

    def __init__(self, text: str):
        self.text = text
        documents = list(yaml.safe_load_all(text))
        self.spec = documents[0]
        self.platform = documents[1] if len(documents) > 1 else {}

    # --- pipeline level
    @property
    def name(self) -> str:
        return self.spec["pipelineInfo"]["name"]

    @property
    def description(self) -> str:
        return self.spec["pipelineInfo"].get("description", "")

    @property
    def parameters(self) -> dict:
        """Pipeline inputs: name -> {parameterType, defaultValue, ...}."""
        return self.spec["root"].get("inputDefinitions", {}).get("parameters", {})

    @property
    def tasks(self) -> dict:
        return self.spec["root"]["dag"]["tasks"]

    # --- per step
    def task(self, step: str) -> dict:
        return self.tasks[task_name(step)]

    def component(self, step: str) -> dict:
        return self.spec["components"][self.task(step)["componentRef"]["name"]]

    def container(self, step: str) -> dict:
        executor = self.component(step)["executorLabel"]
        return self.spec["deploymentSpec"]["executors"][executor]["container"]

    def kubernetes(self, step: str) -> dict:
        """The step's entry in `platforms.kubernetes` (empty when it has none)."""
        executor = self.component(step)["executorLabel"]
        executors = self.platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
        return executors.get("executors", {}).get(executor, {})

    def depends_on(self, step: str) -> set[str]:
        return set(self.task(step).get("dependentTasks", []))

    def data_inputs(self, step: str) -> dict[str, str]:
        """Values the step reads from other tasks: input name -> producer task."""
        inputs = self.task(step).get("inputs", {})
        result = {}
        for name, spec in inputs.get("artifacts", {}).items():
            result[name] = spec["taskOutputArtifact"]["producerTask"]
        for name, spec in inputs.get("parameters", {}).items():
            if "taskOutputParameter" in spec:
                result[name] = spec["taskOutputParameter"]["producerTask"]
        return result

    def parameter_inputs(self, step: str) -> set[str]:
        """Pipeline parameters the step reads."""
        parameters = self.task(step).get("inputs", {}).get("parameters", {})
        return {name for name, spec in parameters.items() if "componentInputParameter" in spec}

    def outputs(self, step: str) -> dict[str, dict]:
        """Output name -> definition (artifacts and parameters together)."""
        definitions = self.component(step).get("outputDefinitions", {})
        return {**definitions.get("artifacts", {}), **definitions.get("parameters", {})}

    def install_command(self, step: str) -> str:
        """The shell script that pip-installs the step's packages before it runs."""
        return next(part for part in self.container(step)["command"] if "pip install" in part)

    def packages(self, step: str) -> set[str]:
        """Packages the step's own `pip install` installs (the kfp runtime install excluded)."""
        script = self.install_command(step)
        first = script.split("pip install", 1)[1].split("&&", 1)[0]
        return set(re.findall(r"'([^']+)'", first))

    def program(self, step: str) -> str:
        """The Python source the step's container runs (the last command element)."""
        return self.container(step)["command"][-1]


@pytest.fixture(autouse=True)
def print_restored_after_kfp_local():
    """Put `builtins.print` back after every test.

    kfp.local indents task output by swapping `builtins.print` per task, which is not thread-safe:
    after a parallel loop the process can keep a wrapped print that pads every line, and a later
    test on the same worker that compares captured output sees its lines indented.
    """
    import builtins

    original = builtins.print
    yield
    builtins.print = original


@pytest.fixture
def temp_files_in_tmp_path(tmp_path, monkeypatch):
    """Keep kale_like's scratch dirs, crash reports and bug-report folders inside tmp_path.

    Test modules opt in with `pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")`.
    """
    scratch = tmp_path / "tempfiles"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process: `run_cli(*argv) -> CliResult(code, out, err)`."""

    def run(*argv) -> CliResult:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def graph_json(run_cli):
    """`graph_json(notebook, *extra_args) -> dict`: the `--graph-json` document."""

    def load(notebook: Path, *args) -> dict:
        result = run_cli(notebook, "--graph-json", "-q", *args)
        assert result.code == 0, result.err
        return json.loads(result.out)

    return load


@pytest.fixture(scope="session")
def compile_notebook(tmp_path_factory):
    """`compile_notebook(path, *extra_args) -> CompiledIR`, cached for the session.

    Fails the calling test if the CLI does not exit 0.
    """
    cache: dict[tuple, CompiledIR] = {}

    def compile_(path: Path, *args: str) -> CompiledIR:
        key = (str(path), args)
        if key not in cache:
            out = tmp_path_factory.mktemp("ir") / "pipeline.yaml"
            code = main([str(path), "--kfp", "-o", str(out), "--no-dsl", "-q", *args])
            assert code == 0, f"compiling {path.name} {' '.join(args)} exited {code}"
            cache[key] = CompiledIR(out.read_text(encoding="utf-8"))
        return cache[key]

    return compile_


@pytest.fixture
def compiled(compile_notebook):
    """`compiled(fixture_name, *extra_args) -> CompiledIR` for a fixture notebook."""
    return lambda name, *args: compile_notebook(fixture_notebook(name), *args)


@pytest.fixture(autouse=True, scope="session")
def compiled_runtimes_kept_out_of_the_home_folder(tmp_path_factory):
    """Local runs keep the compiled step runtime in the user's cache folder; the tests' copy goes to
    a temporary one (a test that needs a fresh cache sets its own)."""
    if "KALE_LIKE_CACHE_DIR" not in os.environ:
        os.environ["KALE_LIKE_CACHE_DIR"] = str(tmp_path_factory.mktemp("kale_like_cache"))
    yield
