"""Failures say what happened: an output that cannot be written (and then nothing is written), a
full disk, a store that cannot be written. Disk-full cases run the command line in a mount
namespace of its own (`unshare -m`) with a small tmpfs, so the disk really is full; they are
skipped where that is not allowed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")


def small_pipeline(folder: Path, size: int = 10) -> Path:
    source = folder / "p.py"
    source.write_text(textwrap.dedent(f"""\
        from kale_like import pipeline, step


        @step
        def make() -> str:
            return "x" * {size}


        @step
        def use(text: str):
            print(len(text))


        @pipeline(name="p")
        def p():
            use(make())
        """), encoding="utf-8")
    return source


def test_an_unwritable_dsl_path_is_refused_and_nothing_is_written(tmp_path, run_cli):
    (tmp_path / "afile").write_text("in the way", encoding="utf-8")
    out = tmp_path / "out" / "p.yaml"
    result = run_cli(small_pipeline(tmp_path), "--kfp", "-o", out, "--dsl", tmp_path / "afile" / "p_kfp.py")
    assert result.code == 2, result.err
    assert f"cannot write {tmp_path / 'afile' / 'p_kfp.py'}" in result.err and "nothing was written" in result.err
    assert "internal error" not in result.err and "Traceback" not in result.err
    assert not (tmp_path / "out").exists()  # not the YAML, not even the folder made for it


def test_a_store_that_cannot_be_written_is_refused_before_the_run(tmp_path, run_cli):
    (tmp_path / "afile").write_text("in the way", encoding="utf-8")
    result = run_cli(small_pipeline(tmp_path), "--run", "--store", tmp_path / "afile" / "store", "--backend", "thread")
    assert result.code == 2, result.err
    assert "the run's store: cannot write" in result.err and "--store DIR" in result.err


def _tmpfs_available() -> bool:
    if not shutil.which("unshare") or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


needs_tmpfs = pytest.mark.skipif(not _tmpfs_available(), reason="needs unshare -m and tmpfs mounts (root on Linux)")


def on_a_full_disk(folder: Path, size: str, *argv: str) -> subprocess.CompletedProcess:
    """`python -m kale_like ARGV` with `folder` a fresh tmpfs of `size`, in a mount namespace of its own."""
    folder.mkdir()
    command = " ".join(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder), "&&",
                        sys.executable, "-m", "kale_like", *argv])
    return subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=120)


@needs_tmpfs
def test_a_full_disk_at_compile_time_says_so_and_writes_nothing(tmp_path):
    folder = tmp_path / "full"
    done = on_a_full_disk(folder, "16k", str(small_pipeline(tmp_path)), "--kfp", "-o", f"{folder}/p.yaml",
                          "&&", "ls", "-A", str(folder))
    assert done.returncode == 2, done.stderr
    assert "the disk is full; nothing was written" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@needs_tmpfs
@pytest.mark.parametrize("backend", ["process", "thread"])
def test_a_full_disk_during_a_local_run_fails_the_step_saying_so(tmp_path, backend):
    folder = tmp_path / "full"
    done = on_a_full_disk(folder, "512k", str(small_pipeline(tmp_path, 2_000_000)), "--run", "--store",
                          f"{folder}/store", "--backend", backend)
    assert done.returncode == 1, done.stderr
    shown = done.stdout + done.stderr
    assert "error: make: cannot write" in shown and "the disk is full" in shown, shown
    assert "exited with code" not in shown  # the worker reported the failure, it did not vanish


def test_a_killed_compiles_temporary_output_is_removed_by_the_next_one(tmp_path, run_cli):
    import os
    import time

    out = tmp_path / "p.yaml"
    stale = tmp_path / ".p.yaml.0123456789abcdef.partial"  # as a compile killed before its rename leaves it
    stale.write_text("half a pipeline", encoding="utf-8")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".p_kfp.py.fedcba9876543210.partial"  # another compile, writing right now
    fresh.write_text("being written", encoding="utf-8")
    assert run_cli(small_pipeline(tmp_path), "--kfp", "-o", out, "-q").code == 0
    assert out.exists() and not stale.exists() and fresh.exists()
