"""Write a compiled pipeline's files: the YAML and the DSL module, all or nothing, with the user's
permissions. Apart from compile.py, so that writing needs no kfp (a script's `Pipeline.compile(path)`
keeps kfp out of its process: `compile_aside.py`)."""

from __future__ import annotations

import contextlib
import glob
import os
import time
import uuid
from pathlib import Path

from kale_like.backends.kfp.compiled import CompiledPipeline
from kale_like.errors import KaleLikeError
from kale_like.os_errors import explained


def write_outputs(compiled: CompiledPipeline, yaml_path: Path, dsl_path: Path | None) -> None:
    """Write the YAML (and the DSL module) all or nothing: each goes to a temporary file beside it
    first, and only once every one is complete are they renamed into place, so an output that
    cannot be written (permission denied, a full disk) leaves no other behind, not even a folder
    made for it. KaleLikeError naming the file, the cause and what to do."""
    outputs = [(yaml_path, compiled.yaml_text)] + ([(dsl_path, compiled.dsl_source)] if dsl_path is not None else [])
    made: list[Path] = []  # folders created here, removed again on failure
    ready: list[tuple[Path, Path]] = []  # (temporary, final)
    current = yaml_path
    try:
        for current, text in outputs:
            made += _make_folder(current.parent)
            _remove_stale_temporaries(current)
            ready.append((_written_beside(current, text), current))
        for temporary, current in ready:
            os.replace(temporary, current)
    except BaseException as error:  # an OSError, or Ctrl-C: nothing of this write stays behind
        for temporary, _ in ready:
            temporary.unlink(missing_ok=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if not isinstance(error, OSError):
            raise
        message, fix = explained(error, current)
        raise KaleLikeError(message + "; nothing was written", None, fix) from None


STALE_SECONDS = 600  # a temporary output older than this belongs to a compile that was killed


def _remove_stale_temporaries(path: Path) -> None:
    """The temporary files a killed compile left beside `path` (a compile renames its own within
    milliseconds; a recent one may be another compile's, writing now)."""
    now = time.time()
    for temporary in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        with contextlib.suppress(OSError):
            if now - temporary.stat().st_mtime > STALE_SECONDS:
                temporary.unlink()


def _make_folder(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; the ones created, outermost first."""
    missing = [f for f in [folder, *folder.parents] if not f.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _written_beside(path: Path, text: str) -> Path:
    """`text` in a temporary file beside `path`, created with mode 0666 so the user's umask decides
    the permissions, as for any file they write (mkstemp's 0600 would hide the pipeline from the
    group that uploads it)."""
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}.partial"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary
