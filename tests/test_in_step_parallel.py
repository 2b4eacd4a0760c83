"""`kale_like.parallel_map` in a step works as documented, on both local backends and in the component.

Imported at module level (the step gets the import in its prelude; in an image without kale_like the
step runtime serves it), and with `backend="process"` from inside a local run's worker process, which
may not start processes of its own: there it runs on threads, with a warning in the step's log.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

import kale_like
from kale_like.surfaces.cli import main

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

SOURCE = Path(__file__).resolve().parent / "fixtures" / "local" / "in_step_parallel.py"


def plain(log: Path) -> list[str]:
    spec = importlib.util.spec_from_file_location("_kl_plain_in_step_parallel", SOURCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the process pool pickles `square` by reference
    spec.loader.exec_module(module)
    module.main(log=str(log))
    return sorted(log.read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_parallel_map_in_steps_gives_what_python_gives(tmp_path, backend):
    expected = plain(tmp_path / "plain.log")
    assert expected == sorted(json.dumps({"what": w, "value": [0, 1, 4, 9, 16]}) for w in ("processes", "threads"))
    log = tmp_path / "run.log"
    result = kale_like.run(SOURCE, {"log": str(log)}, store=tmp_path / "store", backend=backend, echo=False)
    assert result.succeeded, result.error
    assert sorted(log.read_text(encoding="utf-8").splitlines()) == expected
    if backend == "process":
        warning = Path(result.task("processes").log_path).read_text(encoding="utf-8")
        assert "runs on threads here" in warning


def test_the_component_carries_the_import_and_the_runtime_that_serves_it(tmp_path):
    out = tmp_path / "p.yaml"
    assert main([str(SOURCE), "--kfp", "-o", str(out), "--no-dsl", "-q"]) == 0
    executors = next(yaml.safe_load_all(out.read_text(encoding="utf-8")))["deploymentSpec"]["executors"]
    program = executors["exec-threads"]["container"]["command"][-1]
    assert "from kale_like import parallel_map" in program  # the step's prelude
    assert "runtime.py: run, sdk" in program or ", sdk" in program  # the part that serves `kale_like`
