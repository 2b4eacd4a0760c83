"""Run one KFP lightweight Python component, the way its container would, minus the container.

The component's program text is taken from the IR's executor command, loaded as a module once per
process (compiled with the embedded step runtime's code compiled once: see `programs`), and its function is called through `kfp.dsl.executor.Executor` with an executor input
built as plain JSON (so ints stay ints: KFP's own local runner turns them into floats by going
through protobuf). Output lines are prefixed with the task name and kept in a log file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import sys
import threading
import traceback
import types
from dataclasses import dataclass

from kale_like.backends.kfp.sdk_import import load_kfp
from kale_like.backends.local.programs import compile_program
from kale_like.os_errors import explained

_MODULES: dict[str, types.ModuleType] = {}
_MODULE_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class ComponentCall:
    """Everything a worker needs to run one task (picklable, so it can cross to a process)."""

    label: str  # e.g. "train[2]", used as the log prefix
    program: str
    function: str
    executor_input: dict
    log_path: str
    environment: dict | None = None  # the step's env vars (set_env_variable / env: tags)


@dataclass(frozen=True, slots=True)
class ComponentResult:
    ok: bool
    executor_output: dict
    error: str = ""
    log_tail: str = ""


def run_component(call: ComponentCall, echo: bool = True) -> ComponentResult:
    """Execute one component; never raises for a failure of the user's code, nor for a store it
    cannot write (a full disk, permission denied: the result says which file and why)."""
    try:
        return _run_component(call, echo)
    except OSError as error:  # the log or the output folder, outside the user's code
        message, fix = explained(error, error.filename or os.path.dirname(call.log_path))
        return ComponentResult(False, {}, f"{message} ({fix})", tail(call.log_path))


def _run_component(call: ComponentCall, echo: bool) -> ComponentResult:
    os.environ["KALE_LIKE_LOCAL_RUN"] = "1"  # the step runtime leaves tracing to the local executor
    os.makedirs(os.path.dirname(call.log_path), exist_ok=True)
    output_file = call.executor_input["outputs"]["outputFile"]
    os.makedirs(os.path.dirname(output_file), exist_ok=True)
    failure = ""
    with open(call.log_path, "a", encoding="utf-8") as log, _captured(call.label, log, echo), \
            _environment(call.environment or {}):
        try:
            load_kfp()  # as a KFP step container imports it: without its client (sdk_import.py)
            function = _load(call.program, call.function)
            from kfp.dsl import executor

            executor.Executor(executor_input=call.executor_input, function_to_execute=function).execute()
        except BaseException as error:  # the user's code failed: report, do not crash the run
            if isinstance(error, KeyboardInterrupt):
                raise
            print("".join(traceback.format_exception(error)[-12:]), file=sys.stderr)
            failure = f"{type(error).__name__}: {error}"
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
                failure += f" ({explained(error)[0]})"  # the disk is full, permission denied, ...
    if failure:  # the log is complete (flushed and closed) only now
        return ComponentResult(False, {}, failure, tail(call.log_path))
    try:
        with open(output_file, encoding="utf-8") as handle:
            return ComponentResult(True, json.load(handle))
    except FileNotFoundError:
        return ComponentResult(True, {})


_ENVIRONMENT_LOCK = threading.RLock()


@contextlib.contextmanager
def _environment(variables: dict):
    """The step's env vars for the duration of the step. The process environment is shared by
    threads, so steps that set variables run one at a time within a process (worker processes each
    have their own)."""
    if not variables:
        yield
        return
    with _ENVIRONMENT_LOCK:
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update({name: str(value) for name, value in variables.items()})
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _load(program: str, function: str):
    key = hashlib.sha256(program.encode()).hexdigest()
    with _MODULE_LOCK:
        module = _MODULES.get(key)
        if module is None:
            module = types.ModuleType(f"kale_like_component_{len(_MODULES)}")
            module.__file__ = f"<component {function}>"
            # compiled without inheriting this module's `from __future__ import annotations` (the
            # component's annotations are read by KFP's executor as types, not strings)
            exec(compile_program(program, module.__file__), module.__dict__)
            _MODULES[key] = module
    return getattr(module, function)


def tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


class _Router(io.TextIOBase):
    """A stdout/stderr stand-in that sends each thread's writes to that thread's task sink."""

    def __init__(self, fallback):
        self.fallback = fallback
        self.local = threading.local()

    def write(self, text: str) -> int:
        sink = getattr(self.local, "sink", None)
        return sink.write(text) if sink is not None else self.fallback.write(text)

    def flush(self) -> None:
        sink = getattr(self.local, "sink", None)
        (sink or self.fallback).flush()


class _Sink(io.TextIOBase):
    """Line-buffered: each complete line goes to the log and, prefixed, to the terminal."""

    def __init__(self, label: str, log, terminal, echo: bool):
        self.label, self.log, self.terminal, self.echo = label, log, terminal, echo
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        self.log.write(line + "\n")
        if self.echo:
            self.terminal.write(f"[{self.label}] {line}\n")

    def flush(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = ""
        self.log.flush()
        if self.echo:
            self.terminal.flush()


_ROUTERS: dict[str, _Router] = {}
_ROUTER_LOCK = threading.Lock()


@contextlib.contextmanager
def _captured(label: str, log, echo: bool):
    with _ROUTER_LOCK:
        if not isinstance(sys.stdout, _Router):
            _ROUTERS["out"] = sys.stdout = _Router(sys.stdout)
            _ROUTERS["err"] = sys.stderr = _Router(sys.stderr)
    out, err = sys.stdout, sys.stderr
    assert isinstance(out, _Router) and isinstance(err, _Router)  # installed just above
    sink = _Sink(label, log, out.fallback, echo)
    out.local.sink = sink
    err.local.sink = sink
    try:
        yield
    finally:
        try:
            sink.flush()  # may fail (a full disk): this thread's output goes back to the terminal anyway
        finally:
            out.local.sink = None
            err.local.sink = None
