"""Component programs of local runs, and the step runtime they carry, compiled once per process.

A component carries the parts of the step runtime it needs, compressed, and unpacks them into a
module the first time a step runs in a process (`kale_like/backends/kfp/packed_runtime.py`): the
program itself is small, and compiling it is cheap. Compiling the runtime costs 3-8 ms, more
than running a small step, and every run from the command line is a new process: here the
runtime a program names is put in `sys.modules` before the program runs (so the component finds
it there), compiled once and kept in the user's cache folder (marshalled, like a `.pyc`, keyed by
the runtime's source and the Python version), so later runs, in any store, only read it.
`preload` does it in the parent before worker processes are forked, so they inherit it.

A program without such a runtime (compiled by an older kale_like, which nested the runtime's
source in every component) is compiled whole, as it is.
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import sys
import threading
import types
from pathlib import Path

from kale_like.backends.kfp.packed_runtime import RUNTIME_PATTERN, unpack
from kale_like.backends.kfp.sdk_import import client_free, load_kfp
from kale_like.user_cache import cache_folder, keep

_LOCK = threading.Lock()
_CACHE_FORMAT = 2  # bump when what is kept for a runtime changes


def compile_program(program: str, filename: str) -> types.CodeType:
    """`compile(program, filename, "exec", dont_inherit=True)`, the runtime it names provided."""
    provide_runtime(program, cache_folder())
    return compile(program, filename, "exec", dont_inherit=True)


def preload(text: str, cache_dir: Path | None = None) -> None:
    """Provide every runtime `text` carries now (a component program, or the DSL module of them
    all), before worker processes are forked, so they inherit it: read from `cache_dir` if a run
    compiled it before, else compiled and kept there; and import kfp's executor, which every step
    is called through (~40 ms, once here rather than in every worker, all at once, as the first
    steps start), where this process has kfp already or may import it without its client. A
    user's script that has not imported kfp keeps it out: its workers import it as a KFP step
    container does (`workers.py`), 0.3-0.4 s sooner than an import with the client here
    (`sdk_import.py`)."""
    for match in RUNTIME_PATTERN.finditer(text):
        name, blob = match.groups()
        _provide(name, blob, cache_dir)
    if text:
        import_executor()


def import_executor() -> None:
    """kfp's executor, imported into this process where it has kfp already or may import it without
    its client; elsewhere (a user's script that kept kfp out) each worker imports it (`workers.py`)."""
    if "kfp" in sys.modules or client_free():
        load_kfp()
        import kfp.dsl.executor  # noqa: F401


def provide_runtime(program: str, cache_dir: Path | None = None) -> str | None:
    """The name of the runtime module `program` unpacks, after putting it in `sys.modules`; None
    for a program that carries none."""
    match = RUNTIME_PATTERN.search(program)
    if match is None:
        return None
    name, blob = match.groups()
    _provide(name, blob, cache_dir)
    return name


def _provide(name: str, blob: str, cache_dir: Path | None) -> None:
    if name in sys.modules:
        return
    with _LOCK:
        if name not in sys.modules:
            source = unpack(blob)
            filename = f"<{name}>"
            module = types.ModuleType(name)
            exec(_compiled(source, filename, cache_dir), module.__dict__)
            sys.modules[name] = module


def _compiled(source: str, filename: str, cache_dir: Path | None) -> types.CodeType:
    """The runtime's code object: read from `cache_dir` (a file per source and Python), else
    compiled and kept there."""
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{_CACHE_FORMAT}\0{sys.version}\0{importlib.util.MAGIC_NUMBER.hex()}\0{filename}\0"
                             f"{source}".encode())
        path = Path(cache_dir) / f"runtime-{key.hexdigest()[:32]}.marshal"
        try:
            stored_source, code = marshal.loads(path.read_bytes())
            if stored_source == source and isinstance(code, types.CodeType):
                return code
        except (OSError, EOFError, ValueError, TypeError):
            pass  # absent, or written by something else: compile it
    code = compile(source, filename, "exec", dont_inherit=True)
    if path is not None:
        keep(path, marshal.dumps((source, code)))
    return code
