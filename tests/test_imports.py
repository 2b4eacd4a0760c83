"""What compiling and running locally import: nothing a command does not use.

Each case runs the command line in a fresh interpreter (as `python -m kale_like` does) and lists the
modules it imported, with the compile in that process (`KALE_LIKE_COMPILE_ASIDE=0`: the child the
command line forks to compile, kale_like/backends/kfp/compile_aside.py, is a fork of it doing the
same work, and its imports are not in this process's list). Reading a notebook must not import nbformat's validator (jsonschema's format
checkers, which build a grammar at import where JupyterLab is installed); compiling and running
locally must not import the kfp client, the KFP API client or kubernetes (nothing talks to a
server); no command outside a kernel imports IPython or the Jupyter server. Import lists only: how
long the imports take is a benchmark figure (benchmarks/README.md), never asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO

# a module, or a package with everything under it
HEAVY = ("kubernetes", "kfp.client", "kfp_server_api", "jsonschema._format", "rfc3987_syntax", "lark", "nbformat",
         "jupyter_server", "jupyterlab", "jupyterlab_server", "notebook", "tornado", "IPython", "ipykernel")

_LISTING = """
import json, sys
from kale_like.surfaces.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def _imported(tmp_path: Path, *args: str, aside: bool = False, cache: str = "cache") -> list[str]:
    """The modules the command imports; the compile in its own process unless `aside` (the child
    forked for it, kale_like/backends/kfp/compile_aside.py, imports what this process would, and
    its list is not this process's)."""
    listing = tmp_path / "modules.json"
    environment = {**os.environ, "KALE_LIKE_CACHE_DIR": str(tmp_path / cache), "PYTHONPATH": str(REPO),
                   "KALE_LIKE_COMPILE_ASIDE": "1" if aside else "0"}
    environment.pop("_KFP_RUNTIME", None)
    done = subprocess.run([sys.executable, "-c", _LISTING, str(listing), *args], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(listing.read_text())
    assert result["code"] == 0, done.stderr
    return result["modules"]


def _heavy(modules: list[str]) -> list[str]:
    return [name for name in modules if any(name == heavy or name.startswith(heavy + ".") for heavy in HEAVY)]


def _one_step_notebook(path: Path) -> Path:
    cells = [{"cell_type": "code", "id": "a", "metadata": {"tags": ["step:hello"]}, "execution_count": None,
              "outputs": [], "source": ["x = 1 + 1\n", "print(x)"]}]
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))
    return path


def test_compiling_a_notebook_imports_no_client_and_no_notebook_validator(tmp_path):
    modules = _imported(tmp_path, str(EXAMPLES / "parallel_branches.ipynb"), "--kfp", "-o", str(tmp_path / "p.yaml"))
    assert "kfp.compiler" in modules  # the case compiled for real (no YAML kept from an earlier compile)
    assert _heavy(modules) == []


def test_compiling_a_notebook_again_reads_the_kept_pipeline_without_kfp(tmp_path):
    """The second compile of an unchanged notebook reads the YAML the first kept in the cache
    folder (kale_like/backends/kfp/kept_pipelines.py): no kfp module at all, and the same bytes."""
    notebook = str(EXAMPLES / "parallel_branches.ipynb")
    first = _imported(tmp_path, notebook, "--kfp", "-o", str(tmp_path / "first" / "p.yaml"))
    again = _imported(tmp_path, notebook, "--kfp", "-o", str(tmp_path / "again" / "p.yaml"), aside=True)
    assert "kfp.compiler" in first
    assert [name for name in again if name == "kfp" or name.startswith("kfp.")] == []
    for name in ("p.yaml", "p_kfp.py"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "first" / name).read_bytes()


def test_the_command_line_compiles_in_a_child_that_imports_kfp_while_the_notebook_is_read(tmp_path):
    """The command line forks a child as it starts, which imports kfp while the notebook is read
    and analysed, then compiles it (kale_like/backends/kfp/compile_aside.py): the process itself
    imports no kfp, and writes the same files as a compile in the process."""
    notebook = str(EXAMPLES / "parallel_branches.ipynb")
    aside = _imported(tmp_path, notebook, "--kfp", "-o", str(tmp_path / "aside" / "p.yaml"), aside=True)
    _imported(tmp_path, notebook, "--kfp", "-o", str(tmp_path / "here" / "p.yaml"), cache="cache-here")
    assert [name for name in aside if name == "kfp" or name.startswith("kfp.")] == []
    for name in ("p.yaml", "p_kfp.py"):
        assert (tmp_path / "aside" / name).read_bytes() == (tmp_path / "here" / name).read_bytes()


def test_kubernetes_comes_in_only_with_the_kfp_kubernetes_settings_that_need_it(tmp_path):
    """A step with a pod label is written with kfp-kubernetes, whose package imports the kubernetes
    client's models (kfp/kubernetes/node_affinity.py): that is the only way kubernetes comes in."""
    modules = _imported(tmp_path, str(EXAMPLES / "wine_quality.ipynb"), "--kfp", "-o", str(tmp_path / "p.yaml"), "-q")
    assert "kfp.kubernetes" in modules
    assert [name for name in _heavy(modules) if name.split(".")[0] != "kubernetes"] == []


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_running_a_notebook_locally_imports_no_client(tmp_path, backend):
    notebook = _one_step_notebook(tmp_path / "one.ipynb")
    modules = _imported(tmp_path, str(notebook), "--run", "--backend", backend, "-q")
    assert "kfp.dsl.executor" in modules  # the step ran in this process's kfp
    assert _heavy(modules) == []


def test_the_versions_in_the_compile_cache_key_are_those_importlib_metadata_finds():
    """The compiled-YAML cache key reads the writers' versions from their dist-info folders (importing
    importlib.metadata costs a fifth of a small compile); they must be the installed ones."""
    import importlib.metadata

    from kale_like.backends.kfp import kept_pipelines

    names = ("kfp", "kfp-kubernetes", "kfp-pipeline-spec", "protobuf", "PyYAML")
    assert kept_pipelines._installed_versions(names) == {name: importlib.metadata.version(name) for name in names}


def test_a_script_using_kale_like_keeps_kfp_client(tmp_path):
    """Only the command line's own process imports kfp without its client: a user's script that
    compiles with kale_like and then uploads with `kfp.Client` finds it where kfp always puts it."""
    script = tmp_path / "upload.py"
    script.write_text(
        "from kale_like import compile, pipeline, step\n\n\n"
        "@step\ndef hello(name: str) -> str:\n    return name\n\n\n"
        "@pipeline\ndef main(name: str = 'x'):\n    hello(name)\n\n\n"
        "if __name__ == '__main__':\n    compile(main)\n    import kfp\n    print(hasattr(kfp, 'Client'))\n",
        encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


_WORKER_LISTING = """
import contextlib, io, json, sys
from kale_like.surfaces.server.run_worker import main
with contextlib.redirect_stdout(io.StringIO()) as events:
    code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules), "events": events.getvalue()}, out)
"""


def test_the_panels_run_worker_imports_no_client(tmp_path):
    """The panel runs a notebook in a process of its own (`python -m kale_like.surfaces.server.run_worker`),
    which, like the command line's, nothing of the user's shares: kfp without its client there too."""
    notebook = _one_step_notebook(tmp_path / "one.ipynb")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"source": str(notebook), "params": {}, "store": str(tmp_path / "store"),
                                "backend": "thread"}), encoding="utf-8")
    listing = tmp_path / "modules.json"
    environment = {**os.environ, "KALE_LIKE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    environment.pop("_KFP_RUNTIME", None)
    done = subprocess.run([sys.executable, "-c", _WORKER_LISTING, str(listing), str(spec)], cwd=tmp_path,
                          env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(listing.read_text())
    assert result["code"] == 0 and '"status": "SUCCEEDED"' in result["events"], result["events"]
    assert "kfp.dsl.executor" in result["modules"]
    assert _heavy(result["modules"]) == []
