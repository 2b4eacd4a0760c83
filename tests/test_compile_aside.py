"""A user's script that compiles or runs a pipeline keeps kfp out of its own process.

`kale_like.run()`, `kale_like.compile()` and `Pipeline.run()` compile in a forked child
(kale_like/backends/kfp/compile_aside.py): the script's later `import kfp` must then get the whole
SDK (`kfp.Client` included), the YAML must be the one compiled in the script's own process, and a
refused pipeline must raise the same error as there. Each case runs in a fresh interpreter, since
the test process itself has threads and kfp loaded (where the compile stays in the caller).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PIPELINE = TESTS / "fixtures" / "local" / "crash_together.py"
REFUSED = TESTS / "fixtures" / "versions" / "artifact_oneof.py"


def script(tmp_path: Path, body: str, **env: str) -> dict:
    path = tmp_path / "user_script.py"
    path.write_text("import json, sys\nimport kale_like\n" + body, encoding="utf-8")
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=180, cwd=tmp_path,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_scripts_run_leaves_kfp_unimported_and_its_later_import_whole(tmp_path):
    seen = script(tmp_path, f"""
result = kale_like.run({str(PIPELINE)!r}, {{"marks": {str(tmp_path / "marks")!r}}}, store={str(tmp_path / "s")!r},
                       echo=False)
before = "kfp" in sys.modules
import kfp
print(json.dumps({{"status": result.status, "output": result.outputs, "kfp_before": before,
                  "client": hasattr(kfp, "Client")}}))
""")
    assert seen == {"status": "SUCCEEDED", "output": {"Output": 140}, "kfp_before": False, "client": True}


def test_the_yaml_compiled_aside_is_the_one_compiled_in_the_process(tmp_path):
    body = f"""
text = kale_like.compile({str(PIPELINE)!r})
print(json.dumps({{"yaml": text, "kfp": "kfp" in sys.modules}}))
"""
    aside = script(tmp_path, body, KALE_LIKE_CACHE_DIR=str(tmp_path / "cache1"))
    here = script(tmp_path, body, KALE_LIKE_CACHE_DIR=str(tmp_path / "cache2"), KALE_LIKE_COMPILE_ASIDE="0")
    assert aside["kfp"] is False and here["kfp"] is True
    assert aside["yaml"] == here["yaml"] and "crash-once" in aside["yaml"]


def test_a_refused_pipeline_raises_the_same_error_in_a_script(tmp_path):
    body = f"""
try:
    kale_like.compile({str(REFUSED)!r})
except kale_like.errors.KaleLikeError as error:
    print(json.dumps({{"type": type(error).__name__, "text": str(error)}}))
"""
    aside = script(tmp_path, "import kale_like.errors\n" + body)
    here = script(tmp_path, "import kale_like.errors\n" + body, KALE_LIKE_COMPILE_ASIDE="0")
    assert aside == here and "on KFP 2.14" in aside["text"]


def test_a_step_in_a_worker_process_sees_kfp_as_a_kfp_container_does(tmp_path):
    """KFP starts each step as `_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main` (the command
    kfp's compiler writes into every component, kfp/dsl/component_factory.py), so the kfp a step
    imports has no `kfp.Client`, and the step sees the variable; a local run's worker processes
    give steps the same."""
    step_file = tmp_path / "peek.py"
    step_file.write_text('''
from kale_like import pipeline, step


@step
def peek() -> str:
    import os

    import kfp
    return f"client={hasattr(kfp, 'Client')} runtime={os.environ.get('_KFP_RUNTIME')}"


@pipeline(name="peek")
def peeking():
    return peek()
''', encoding="utf-8")
    seen = script(tmp_path, f"""
result = kale_like.run({str(step_file)!r}, store={str(tmp_path / "s")!r}, echo=False)
print(json.dumps(result.outputs))
""")
    assert seen == {"Output": "client=False runtime=true"}


def test_a_pipeline_compiled_before_runs_without_importing_kfp_at_all(tmp_path):
    """The YAML an earlier process kept for the same module is read back without kfp
    (kale_like/backends/kfp/kept_pipelines.py): even where the compile would run in the script's
    own process, the second script never imports kfp, and runs the same."""
    body = f"""
result = kale_like.run({str(PIPELINE)!r}, {{"marks": {str(tmp_path / "marks")!r}}}, store={str(tmp_path / "s")!r},
                       echo=False)
print(json.dumps({{"status": result.status, "output": result.outputs, "kfp": "kfp" in sys.modules}}))
"""
    first = script(tmp_path, body, KALE_LIKE_CACHE_DIR=str(tmp_path / "cache"), KALE_LIKE_COMPILE_ASIDE="0")
    again = script(tmp_path, body, KALE_LIKE_CACHE_DIR=str(tmp_path / "cache"), KALE_LIKE_COMPILE_ASIDE="0")
    assert first == {"status": "SUCCEEDED", "output": {"Output": 140}, "kfp": True}
    assert again == {**first, "kfp": False}


_CHILDREN = """
import json, os, sys
from kale_like.surfaces.cli import main

def children():
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                found.append((int(entry), fields[0]))
    return found

codes = [main(args.split("|")) for args in sys.argv[1:]]
print(json.dumps({"codes": codes, "children": children()}))
"""


def test_the_command_lines_compile_child_is_gone_when_it_returns(tmp_path):
    """The command line forks its compile child as it starts (compile_aside.py): a source refused
    before anything compiles stops it, a compile reaps it; neither leaves a process, not even a
    zombie, behind."""
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [', encoding="utf-8")
    good = TESTS.parent / "examples" / "notebooks" / "parallel_branches.ipynb"
    environment = {**os.environ, "KALE_LIKE_CACHE_DIR": str(tmp_path / "cache")}
    environment.pop("KALE_LIKE_COMPILE_ASIDE", None)
    done = subprocess.run([sys.executable, "-c", _CHILDREN, f"{bad}|--kfp|-q",
                           f"{good}|--kfp|-o|{tmp_path / 'p.yaml'}|-q"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path, env=environment)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"codes": [2, 0], "children": []}
    assert (tmp_path / "p.yaml").exists()
