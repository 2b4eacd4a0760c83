"""Compile in a child process, so that a user's script never imports kfp for it.

In a user's script, kfp is imported as it is, with its client (`sdk_import.py`: the script may
upload with `kfp.Client` later), and that import costs 0.3-0.4 s (kubernetes' models, the API
client) that compiling never uses: most of what a script's first `kale_like.run()` or
`Pipeline.run()` spends before its first step starts. A child forked for the compile is
kale_like's own process, so it imports kfp without the client (~0.1 s), compiles, and hands the
YAML back. The script's process then has no kfp at all: its own later `import kfp` gets the whole
SDK, client included, and the worker processes of a local run import kfp as a KFP step container
does (`backends/local/workers.py`).

Only where forking is safe and gains something: on Linux, in a process with one thread, that is
not an IPython kernel, has not imported kfp yet and is not the command line's (which imports kfp
without its client itself). Anywhere else, and whenever the child fails (a refused pipeline, an
internal error, a child that died), the compile runs in the caller's process, which then raises
the error with its own type and text.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading

from kale_like.backends.kfp.compiled import CompiledPipeline
from kale_like.graph.model import StepGraph
from kale_like.process_role import kale_like_owns_process, owned_by_kale_like


def compile_graph(graph: StepGraph, yaml_name: str = "pipeline.yaml") -> CompiledPipeline:
    """`compile.compile_graph(graph, yaml_name)`, in a forked child where that is safe."""
    return start_compile(graph, yaml_name).result()


class Compiling:
    """A compile started in a forked child (where that is safe): the caller may do other work (import
    what it needs next) while the child compiles; `result()` waits for it, or compiles here."""

    def __init__(self, graph: StepGraph, yaml_name: str) -> None:
        self.graph, self.yaml_name = graph, yaml_name
        self.child = _start_child(graph, yaml_name) if forkable() else None

    def result(self) -> CompiledPipeline:
        texts = _child_result(*self.child) if self.child is not None else None
        self.child = None
        if texts is None:
            from kale_like.backends.kfp.compile import compile_graph as compile_here

            return compile_here(self.graph, self.yaml_name)
        return CompiledPipeline(*texts)


def start_compile(graph: StepGraph, yaml_name: str = "pipeline.yaml") -> Compiling:
    """`compile.compile_graph(graph, yaml_name)`, started: in a forked child where that is safe."""
    return Compiling(graph, yaml_name)


def forkable() -> bool:
    """Whether a compile may run in a forked child here, and gains by it."""
    return (sys.platform.startswith("linux") and hasattr(os, "fork") and not kale_like_owns_process()
            and "kfp" not in sys.modules and "IPython" not in sys.modules and threading.active_count() == 1
            and os.environ.get("KALE_LIKE_COMPILE_ASIDE", "1") != "0")


def _start_child(graph: StepGraph, yaml_name: str) -> tuple[int, int] | None:
    """A forked child compiling the graph, and the pipe it answers on; None when it cannot fork."""
    _flush()  # what the script printed goes out once, not again from the child
    read, write = os.pipe()
    try:
        child = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        return None
    if child == 0:
        os.close(read)
        _compile_and_exit(graph, yaml_name, write)
    os.close(write)
    return child, read


def _child_result(child: int, read: int) -> tuple[str, str] | None:
    """The YAML and the DSL module the child compiled; None when it did not compile (the caller then
    compiles, and reports what went wrong)."""
    with os.fdopen(read, "rb") as stream:
        data = stream.read()
    try:
        os.waitpid(child, 0)
    except ChildProcessError:  # reaped already (a process that ignores SIGCHLD)
        pass
    try:
        texts = pickle.loads(data) if data else None
    except (pickle.UnpicklingError, EOFError, ValueError):
        return None
    return texts if isinstance(texts, tuple) and len(texts) == 2 else None


def _compile_and_exit(graph: StepGraph, yaml_name: str, write: int) -> None:
    """The child: compile, send the texts (nothing when it fails), and leave without running the
    script's exit handlers."""
    try:
        owned_by_kale_like()
        from kale_like.backends.kfp.compile import compile_graph as compile_here

        compiled = compile_here(graph, yaml_name)
        with os.fdopen(write, "wb") as pipe:
            pipe.write(pickle.dumps((compiled.yaml_text, compiled.dsl_source)))
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
