"""The user's cache folder: files kale_like derives once and reads back in later processes (the
compiled step runtime, compiled pipelines). Everything in it can be deleted at any time; it is
made again when needed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_folder() -> Path | None:
    """$KALE_LIKE_CACHE_DIR, else kale_like under the user's cache folder ($XDG_CACHE_HOME, else
    ~/.cache); None without a home (some containers), and then nothing is kept."""
    if os.environ.get("KALE_LIKE_CACHE_DIR"):
        return Path(os.environ["KALE_LIKE_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "kale_like"
    try:
        return Path.home() / ".cache" / "kale_like"
    except RuntimeError:  # no $HOME and no user entry
        return None


def keep(path: Path, data: bytes) -> bool:
    """Write a file of the cache folder atomically (a process killed mid-write leaves no half file
    for the next one to read); False if it could not be written (a read-only or full disk: the
    caller just derives it again next time)."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
        return True
    except OSError:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        return False
