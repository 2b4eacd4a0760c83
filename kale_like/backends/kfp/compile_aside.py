"""Compile in a child process: kfp's import overlaps the caller's work, and a script keeps kfp out.

In a user's script, kfp is imported as it is, with its client (`sdk_import.py`: the script may
upload with `kfp.Client` later), and that import costs 0.3-0.4 s (kubernetes' models, the API
client) that compiling never uses: most of what a script's first `kale_like.run()` or
`Pipeline.run()` spends before its first step starts. A child forked for the compile is
kale_like's own process, so it imports kfp without the client (~0.1 s), compiles, and hands the
YAML back. The script's process then has no kfp at all: its own later `import kfp` gets the whole
SDK, client included, and the worker processes of a local run import kfp as a KFP step container
does (`backends/local/workers.py`).

The work is split where kfp starts: the child imports kfp while the caller reads the source
(`CompileChild.start` before the graph is known: the command line, `kale_like.run`) or writes the
DSL module (lowering and code generation need no kfp) and looks for a pipeline an earlier compile
of the same module kept (`kept_pipelines.py`, no kfp either). A kept one is used at once, and the
child is stopped; else the module goes to the child, which by then has kfp loaded: it compiles
and checks it structurally (`compile.compile_module`), and the caller checks the result against
the graph's target (`target_checks.py`).

Only where forking is safe and gains something: on Linux, in a process with one thread, that is
not an IPython kernel and has not imported kfp yet. Anywhere else, and whenever the child fails (a
refused pipeline, an internal error, a child that died), the compile runs in the caller's process,
which then raises the error with its own type and text.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import signal
import sys
import threading
from typing import TYPE_CHECKING

try:
    import fcntl
except ImportError:  # not POSIX: nothing forks there (`forkable`)
    fcntl = None  # type: ignore[assignment]

from kale_like.backends.kfp.compiled import CompiledPipeline
from kale_like.graph.model import StepGraph
from kale_like.process_role import owned_by_kale_like

if TYPE_CHECKING:  # imported when needed: before a fork, every import delays the child
    from kale_like.backends.kfp.workflow_size import WorkflowShape


def compile_graph(graph: StepGraph, yaml_name: str = "pipeline.yaml",
                  child: CompileChild | None = None) -> CompiledPipeline:
    """`compile.compile_graph(graph, yaml_name)`, in a forked child where that is safe (`child`, if
    one was started before the graph was known)."""
    return start_compile(graph, yaml_name, child).result()


class CompileChild:
    """A forked child that imports kfp (without its client) from the moment it starts, then
    compiles the DSL module it is handed; `start()` is None where forking is not safe."""

    def __init__(self, pid: int, to_child: int, from_child: int) -> None:
        self.pid = pid
        self.to_child: int | None = to_child  # the module goes down this pipe (closed without it: the child exits)
        self.from_child: int | None = from_child  # the YAML comes back up this one (nothing if not compiled)
        self.handed = False  # whether it was handed a module

    @classmethod
    def start(cls) -> CompileChild | None:
        if not forkable():
            return None
        _flush()  # what the process printed goes out once, not again from the child
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
            _compile_and_exit(source_read, result_write)
        os.close(source_read)
        os.close(result_write)
        return cls(pid, source_write, result_read)

    def __enter__(self) -> CompileChild:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def send(self, source: str) -> bool:
        """Hand the module to the child; False when it is gone (or was handed one already)."""
        if self.to_child is None:
            return False
        descriptor, self.to_child = self.to_child, None
        try:
            with os.fdopen(descriptor, "wb") as pipe:
                pipe.write(source.encode("utf-8"))
            self.handed = True
            return True
        except OSError:  # BrokenPipeError: it died (it compiles nothing; the caller does)
            return False

    def result(self) -> tuple[str, WorkflowShape] | None:
        """The YAML the child compiled and its Workflow's shape; None when it did not compile (the
        caller then compiles, and reports what went wrong)."""
        if self.from_child is None:
            return None
        descriptor, self.from_child = self.from_child, None
        with os.fdopen(descriptor, "rb") as stream:
            data = stream.read()
        self._reap()
        from kale_like.backends.kfp.workflow_size import WorkflowShape

        try:
            text, shape = pickle.loads(data)
            return text, WorkflowShape.from_json(shape)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError):  # nothing sent
            return None

    def stop(self) -> None:
        """Stop the child if it was not handed a module (it has only been importing kfp); once it
        was, it belongs to the compile it was handed to (`Compiling`). Idempotent."""
        if not self.handed:
            self.abandon()

    def abandon(self) -> None:
        """Stop the child whatever it is doing (its result is not wanted); nothing once its result
        was taken."""
        if self.to_child is None and self.from_child is None:
            return
        for descriptor in (self.to_child, self.from_child):
            if descriptor is not None:
                with contextlib.suppress(OSError):
                    os.close(descriptor)
        self.to_child = self.from_child = None
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:  # reaped already (a process that ignores SIGCHLD)
            pass


class Compiling:
    """A compile started: the DSL module written here, and compiled in a forked child (where that is
    safe) unless an earlier compile kept it; the caller may do other work (import what it needs
    next) while the child compiles, and `result()` waits for it, or compiles here. Leaving a `with`
    block without the result (an error meanwhile) stops the child."""

    def __init__(self, graph: StepGraph, yaml_name: str, child: CompileChild | None = None,
                 finished: CompiledPipeline | None = None) -> None:
        """`finished`: the compile of `graph` the caller kept from an earlier call (nothing to do)."""
        self.graph = graph
        self.kept: CompiledPipeline | None = finished
        if finished is not None:
            self.source, self.child = finished.dsl_source, None
            return
        child = child or CompileChild.start()  # importing kfp while the module is written
        try:  # imported after the fork (~30 ms, with yaml), as the child imports kfp
            from kale_like.backends.kfp.dsl_codegen import generate_module
            from kale_like.backends.kfp.kept_pipelines import read_compiled

            self.source = generate_module(graph, yaml_name)
            self.kept = read_compiled(graph, self.source)
        except BaseException:
            if child is not None:
                child.abandon()
            raise
        self.child = child if self.kept is None and child is not None and child.send(self.source) else None
        if child is not None and self.child is None:
            child.abandon()

    def __enter__(self) -> Compiling:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.child is not None:
            self.child.abandon()
            self.child = None

    def result(self) -> CompiledPipeline:
        if self.kept is not None:
            return self.kept
        compiled = self.child.result() if self.child is not None else None
        self.child = None
        if compiled is None:
            from kale_like.backends.kfp.compile import compile_source

            return compile_source(self.graph, self.source)
        from kale_like.backends.kfp.target_checks import checked

        return checked(self.graph, *compiled, self.source)


def start_compile(graph: StepGraph, yaml_name: str = "pipeline.yaml",
                  child: CompileChild | None = None) -> Compiling:
    """`compile.compile_graph(graph, yaml_name)`, started: in a forked child where that is safe."""
    return Compiling(graph, yaml_name, child)


def forkable() -> bool:
    """Whether a compile may run in a forked child here, and gains by it."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork") and "kfp" not in sys.modules
            and "IPython" not in sys.modules and threading.active_count() == 1
            and os.environ.get("KALE_LIKE_COMPILE_ASIDE", "1") != "0")


_PIPE_BYTES = 1 << 20  # Linux's default most a process may ask for (/proc/sys/fs/pipe-max-size)


def _compile_and_exit(source_in: int, result_out: int) -> None:
    """The child: load kfp (without its client) and what the module will import, read the module,
    compile it, send the YAML and its Workflow's shape (nothing when it fails), and leave without
    running the process's exit handlers."""
    try:
        owned_by_kale_like()
        from kale_like.backends.kfp.compile import compile_module

        for name in ("kfp.dsl", "kfp.compiler"):  # what the module and the YAML writer import
            importlib.import_module(name)

        with os.fdopen(source_in, "rb") as pipe:
            data = pipe.read()
        if data:
            text, shape = compile_module(data.decode("utf-8"))
            with os.fdopen(result_out, "wb") as pipe:
                pipe.write(pickle.dumps((text, shape.to_json())))
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
