"""A large pipeline's checks run in a forked child while its YAML is written
(kale_like/backends/kfp/checks_aside.py): the same shape, the same problems, the same YAML as when
they run in the compiling process afterwards; and a child that dies changes nothing.

Each case runs in a fresh interpreter that kale_like owns, as the command line's does (the test
process has threads, where nothing forks); `MANY` is lowered so that a pipeline of 12 steps counts
as large.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

_SCRIPT = """
import json, os, sys
from kale_like import Pipeline
from kale_like.process_role import owned_by_kale_like
from kale_like.backends.kfp import checks_aside
from kale_like.backends.kfp.compile import compile_graph
from kale_like.backends.kfp.kept_pipelines import kept_path, read_kept

owned_by_kale_like()
checks_aside.MANY = 10
original = checks_aside.checks
def checks(documents):  # each process that makes them says so
    with open("made_in.txt", "a") as note:
        note.write(f"{os.getpid()}\\n")
    return original(documents)
checks_aside.checks = checks
if sys.argv[1] == "dies":
    checks_aside._checks_to = lambda documents, send: os._exit(3)

def chunk(chunk_id: int) -> str:
    return f"processed_{chunk_id}"

pipeline = Pipeline("chunked")
for i in range(12):
    pipeline.add_step(chunk, name=f"chunk_{i}", params={"chunk_id": i})
compiled = compile_graph(pipeline.graph())
text, shape = read_kept(kept_path(compiled.dsl_source))
made_in = [int(line) for line in open("made_in.txt")]
print(json.dumps({"yaml": compiled.yaml_text, "shape": shape.to_json(), "here": made_in == [os.getpid()],
                  "made": len(made_in)}))
"""


def _compiled(tmp_path: Path, how: str, **env: str) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "KALE_LIKE_CACHE_DIR": str(tmp_path / f"{how}-cache"), **env}
    folder = tmp_path / how
    folder.mkdir()
    script = folder / "compile_chunks.py"  # a file: a step's source is read from it
    script.write_text(_SCRIPT, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), how], capture_output=True, text=True, timeout=120,
                          env=environment, cwd=folder)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_large_pipelines_checks_made_aside_are_those_made_here(tmp_path):
    aside = _compiled(tmp_path, "aside")
    here = _compiled(tmp_path, "here", KALE_LIKE_ONE_CORE="1")
    assert here["here"] is True  # made in the compiling process
    assert aside["made"] == 1 and aside["here"] is False  # made once, in another process: the child
    assert aside["yaml"] == here["yaml"] and aside["shape"] == here["shape"]


def test_a_checking_child_that_dies_changes_nothing(tmp_path):
    died = _compiled(tmp_path, "dies")
    here = _compiled(tmp_path, "here", KALE_LIKE_ONE_CORE="1")
    assert died["here"] is True  # made again in the compiling process
    assert died["yaml"] == here["yaml"] and died["shape"] == here["shape"]
