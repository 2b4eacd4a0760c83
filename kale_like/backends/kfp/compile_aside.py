"""Compile in a child process, so that a user's script never imports kfp for it.

In a user's script, kfp is imported as it is, with its client (`sdk_import.py`: the script may
upload with `kfp.Client` later), and that import costs 0.3-0.4 s (kubernetes' models, the API
client) that compiling never uses: most of what a script's first `kale_like.run()` or
`Pipeline.run()` spends before its first step starts. A child forked for the compile is
kale_like's own process, so it imports kfp without the client (~0.1 s), compiles, and hands the
YAML back. The script's process then has no kfp at all: its own later `import kfp` gets the whole
SDK, client included, and the worker processes of a local run import kfp as a KFP step container
does (`backends/local/workers.py`).

The work is split where kfp starts: the child imports kfp while this process writes the DSL module
(lowering and code generation need no kfp) and looks for a pipeline an earlier compile of the same
module kept (`kept_pipelines.py`, no kfp either). A kept one is used at once, and the child is
stopped; else the module goes to the child, which by then has kfp loaded, and it compiles.

Only where forking is safe and gains something: on Linux, in a process with one thread, that is
not an IPython kernel, has not imported kfp yet and is not the command line's (which imports kfp
without its client itself). Anywhere else, and whenever the child fails (a refused pipeline, an
internal error, a child that died), the compile runs in the caller's process, which then raises
the error with its own type and text.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import signal
import sys
import threading
from dataclasses import dataclass

try:
    import fcntl
except ImportError:  # not POSIX: nothing forks there (`forkable`)
    fcntl = None  # type: ignore[assignment]

from kale_like.backends.kfp.compiled import CompiledPipeline
from kale_like.graph.model import StepGraph
from kale_like.process_role import kale_like_owns_process, owned_by_kale_like


def compile_graph(graph: StepGraph, yaml_name: str = "pipeline.yaml") -> CompiledPipeline:
    """`compile.compile_graph(graph, yaml_name)`, in a forked child where that is safe."""
    return start_compile(graph, yaml_name).result()


class Compiling:
    """A compile started: the DSL module written here, and compiled in a forked child (where that is
    safe) unless an earlier compile kept it; the caller may do other work (import what it needs
    next) while the child compiles, and `result()` waits for it, or compiles here."""

    def __init__(self, graph: StepGraph, yaml_name: str) -> None:
        self.graph = graph
        child = _start_child(graph) if forkable() else None  # importing kfp while the module is written
        try:  # imported after the fork (~30 ms, with yaml), as the child imports kfp
            from kale_like.backends.kfp.dsl_codegen import generate_module
            from kale_like.backends.kfp.kept_pipelines import read_compiled

            self.source = generate_module(graph, yaml_name)
            self.kept = read_compiled(graph, self.source)
        except BaseException:
            if child is not None:
                _stop(child)
            raise
        self.child = child if self.kept is None and child is not None and _send(child, self.source) else None
        if child is not None and self.child is None:
            _stop(child)

    def result(self) -> CompiledPipeline:
        if self.kept is not None:
            return self.kept
        text = _child_result(self.child) if self.child is not None else None
        self.child = None
        if text is None:
            from kale_like.backends.kfp.compile import compile_source

            return compile_source(self.graph, self.source)
        return CompiledPipeline(text, self.source)


def start_compile(graph: StepGraph, yaml_name: str = "pipeline.yaml") -> Compiling:
    """`compile.compile_graph(graph, yaml_name)`, started: in a forked child where that is safe."""
    return Compiling(graph, yaml_name)


def forkable() -> bool:
    """Whether a compile may run in a forked child here, and gains by it."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork") and not kale_like_owns_process()
            and "kfp" not in sys.modules and "IPython" not in sys.modules and threading.active_count() == 1
            and os.environ.get("KALE_LIKE_COMPILE_ASIDE", "1") != "0")


@dataclass(frozen=True)
class _Child:
    pid: int
    to_child: int  # the DSL module goes down this pipe (closed without it: the child just exits)
    from_child: int  # the YAML comes back up this one (nothing when the child did not compile)


def _start_child(graph: StepGraph) -> _Child | None:
    """A forked child that loads kfp and waits for the module to compile; None when it cannot fork."""
    _flush()  # what the script printed goes out once, not again from the child
    source_read, source_write = os.pipe()
    result_read, result_write = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # Linux: the module fits, the caller never waits
        fcntl.fcntl(source_write, getattr(fcntl, "F_SETPIPE_SZ"), _PIPE_BYTES)
    try:
        pid = os.fork()
    except OSError:
        for descriptor in (source_read, source_write, result_read, result_write):
            os.close(descriptor)
        return None
    if pid == 0:
        os.close(source_write)
        os.close(result_read)
        _compile_and_exit(graph, source_read, result_write)
    os.close(source_read)
    os.close(result_write)
    return _Child(pid, source_write, result_read)


_PIPE_BYTES = 1 << 20  # Linux's default most a process may ask for (/proc/sys/fs/pipe-max-size)


def _send(child: _Child, source: str) -> bool:
    """Hand the module to the child; False when the child is gone."""
    try:
        with os.fdopen(child.to_child, "wb") as pipe:
            pipe.write(source.encode("utf-8"))
        return True
    except OSError:  # BrokenPipeError: it died (it compiles nothing; the caller does)
        return False


def _stop(child: _Child) -> None:
    """Stop a child that has nothing to compile (it has only been importing kfp)."""
    with contextlib.suppress(OSError):
        os.close(child.to_child)
    with contextlib.suppress(OSError):
        os.kill(child.pid, signal.SIGKILL)
    _reap(child)


def _reap(child: _Child) -> None:
    with contextlib.suppress(OSError):
        os.close(child.from_child)
    try:
        os.waitpid(child.pid, 0)
    except ChildProcessError:  # reaped already (a process that ignores SIGCHLD)
        pass


def _child_result(child: _Child) -> str | None:
    """The YAML the child compiled; None when it did not compile (the caller then compiles, and
    reports what went wrong)."""
    with os.fdopen(child.from_child, "rb") as stream:
        data = stream.read()
    try:
        os.waitpid(child.pid, 0)
    except ChildProcessError:
        pass
    try:
        text = pickle.loads(data) if data else None
    except (pickle.UnpicklingError, EOFError, ValueError):
        return None
    return text if isinstance(text, str) else None


def _compile_and_exit(graph: StepGraph, source_in: int, result_out: int) -> None:
    """The child: load kfp (without its client) and what the module will import, read the module,
    compile it, send the YAML (nothing when it fails), and leave without running the script's exit
    handlers."""
    try:
        owned_by_kale_like()
        from kale_like.backends.kfp.compile import compile_source

        for name in ("kfp.dsl", "kfp.compiler"):  # what the module and the YAML writer import
            importlib.import_module(name)

        with os.fdopen(source_in, "rb") as pipe:
            data = pipe.read()
        if data:
            compiled = compile_source(graph, data.decode("utf-8"))
            with os.fdopen(result_out, "wb") as pipe:
                pipe.write(pickle.dumps(compiled.yaml_text))
    except BaseException:  # noqa: BLE001 - the parent compiles again and reports it
        pass
    finally:
        _flush()
        os._exit(0)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
