"""Where a local run's steps execute: on the task's own thread, or in worker processes.

Worker processes are forked once per run, before the run starts any thread, and each serves one
call at a time over its own pipe. Not `concurrent.futures.ProcessPoolExecutor`, because:
- a call there crosses two more threads (the executor's manager and its queue feeder): 0.2-0.3 ms
  a call against 0.04 ms over a pipe, and a millisecond or two more to start and to stop;
- a worker that dies (a crash in native code, `os._exit` in a step) breaks that pool for good, so
  every task still to run fails with it; here the task it ran fails with the exit code or signal,
  and a new worker takes its place;
- a run should not wait for its workers to exit (tearing down a process's memory takes a few ms),
  and that pool cannot be left closing on its own (its exit hook races with the closing).

Workers die with the run's process, however it ends (`kill -9` included), even in the middle of a
step (`_die_with_parent`): on Linux the kernel kills them (`PR_SET_PDEATHSIG`); elsewhere, and for a
worker forked on a thread that may end before the run, a thread in the worker kills it when the
pool's lifeline pipe closes, which happens only when the parent is gone, since no worker keeps a
copy of the pipe's write end or of another worker's end of its pipe.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from multiprocessing.connection import Connection

from kale_like.backends.local.component_runner import ComponentCall, ComponentResult, run_component, tail
from kale_like.backends.local.programs import import_executor
from kale_like.process_role import owned_by_kale_like

_CLOSING: list[_Worker] = []  # earlier runs' workers, told to stop, that may still be exiting
_CLOSING_LOCK = threading.Lock()


def wait_for_closing_pools() -> None:
    """Return once the worker processes of every run that has returned have exited."""
    with _CLOSING_LOCK:
        closing, _CLOSING[:] = list(_CLOSING), []
    for worker in closing:
        worker.process.join()
        worker.close()


class ThreadWorkers:
    """A task's component runs on the thread already running the task, at most `count` at a time
    (a hand-over to a pool thread and back would add two thread switches per step)."""

    def __init__(self, count: int):
        self.slots = threading.BoundedSemaphore(count)

    def run(self, call: ComponentCall, echo: bool) -> ComponentResult:
        with self.slots:
            return run_component(call, echo)

    def close_soon(self, cancel: bool = False) -> None:
        pass


_PARENT_ONLY: set[int] = set()  # descriptors a worker closes first: lifeline write ends, other workers' pipes
_PARENT_ONLY_LOCK = threading.Lock()
# Held from a worker's pipe being made until the parent has closed the worker's end of it. Loop
# iterations replace crashed workers on their own threads, at the same time: a fork on one thread
# between another's `Pipe()` and its `child_end.close()` would give the new worker a copy of the
# other worker's end, and the parent would then never read end-of-file when that other worker dies
# (the run waited forever for a step whose process was gone).
_FORKING = threading.Lock()
if hasattr(os, "register_at_fork"):  # POSIX; elsewhere nothing forks (the thread backend)
    os.register_at_fork(after_in_child=lambda: globals().update(_FORKING=threading.Lock()))


class _Worker:
    def __init__(self, context, lifeline: int, owner: threading.Thread):
        with _FORKING:
            self.connection, child_end = context.Pipe()
            with _PARENT_ONLY_LOCK:
                inherited = sorted(_PARENT_ONLY | {self.connection.fileno()})
                _PARENT_ONLY.add(self.connection.fileno())
            # PR_SET_PDEATHSIG fires when the forking *thread* ends: only the pool's owner (the thread
            # running the run) lives as long as the run
            kernel_watch = threading.current_thread() is owner
            self.process = context.Process(target=_serve, name="kale-like-worker", daemon=True,
                                           args=(child_end, os.getpid(), lifeline, inherited, kernel_watch))
            self.process.start()
            child_end.close()

    def close(self) -> None:
        with _PARENT_ONLY_LOCK:
            _PARENT_ONLY.discard(self.connection.fileno())
        self.connection.close()


class ProcessWorkers:
    """`count` forked worker processes; `run` takes an idle one for the call."""

    def __init__(self, count: int):
        # fork: workers start with kfp (and the compiled step runtime, see `programs.preload`)
        # already loaded, and without re-running the caller's __main__ (a notebook, stdin). All of
        # them start now, before the run starts any thread and once an earlier run's workers have
        # exited, so no child inherits a lock another thread holds.
        wait_for_closing_pools()
        import_executor()  # imported once here, inherited by every worker (where this process may)

        self.context = multiprocessing.get_context("fork")
        self.owner = threading.current_thread()
        self.lifeline, self.lifeline_write = os.pipe()  # nothing is ever written: it only closes
        with _PARENT_ONLY_LOCK:
            _PARENT_ONLY.add(self.lifeline_write)
        with _frozen_heap():
            self.idle = [_Worker(self.context, self.lifeline, self.owner) for _ in range(count)]
        self.all = list(self.idle)
        self.available = threading.Condition()
        self.closed = False

    def run(self, call: ComponentCall, echo: bool) -> ComponentResult:
        with self.available:
            while not self.idle:
                self.available.wait()
            worker = self.idle.pop()
        try:
            worker.connection.send((call, echo))
            return worker.connection.recv()
        except (EOFError, OSError):  # the worker died during the call, or the run stopped it
            code, worker = self._replace(worker)
            error = "stopped with the run" if self.closed else _death(code)
            return ComponentResult(False, {}, error, tail(call.log_path))
        except BaseException:  # Ctrl-C while this (main) thread waited: the step stops too
            worker.process.terminate()
            raise
        finally:
            with self.available:
                self.idle.append(worker)
                self.available.notify()

    def _replace(self, dead: _Worker) -> tuple[int | None, _Worker]:
        """The dead worker's exit code, and a new worker in its place (forked from a parent that
        has threads by now: the rare path; ProcessPoolExecutor itself forks on demand); the dead
        one again once the pool is closing."""
        dead.process.join(timeout=5)
        with self.available:
            if self.closed:
                return dead.process.exitcode, dead
        with warnings.catch_warnings(), _frozen_heap():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork with threads
            fresh = _Worker(self.context, self.lifeline, self.owner)
        dead.close()
        with self.available:
            self.all[self.all.index(dead)] = fresh
        return dead.process.exitcode, fresh

    def resize(self, count: int) -> None:
        """Have `count` workers (at least one), before the run starts: forked before the run knew
        how many tasks can run at once (`run.LocalRun`), idle ones beyond it would only hold memory,
        and too few would hold tasks back. Called while this process has no other thread."""
        count = max(1, count)
        with self.available:
            extra = self.idle[:max(0, len(self.all) - count)]
            for worker in extra:
                self.idle.remove(worker)
                self.all.remove(worker)
            missing = count - len(self.all)
        for worker in extra:
            _stop_quietly(worker)
        with _CLOSING_LOCK:
            _CLOSING.extend(extra)
        if missing > 0:
            with _frozen_heap():
                fresh = [_Worker(self.context, self.lifeline, self.owner) for _ in range(missing)]
            with self.available:
                self.idle.extend(fresh)
                self.all.extend(fresh)

    def close_soon(self, cancel: bool = False) -> None:
        """Tell every worker to stop once idle (`cancel`: stop the busy ones now), and return: the
        caller need not wait for processes to exit (tearing down their memory takes a few ms). The
        next run's workers wait for them before forking; at the interpreter's exit,
        multiprocessing joins them (they are daemon processes)."""
        with self.available:
            workers, idle, self.closed = list(self.all), list(self.idle), True
        for worker in workers:
            if cancel and worker not in idle:
                worker.process.terminate()
                continue
            _stop_quietly(worker)
        with _CLOSING_LOCK:
            _CLOSING.extend(workers)
        with _PARENT_ONLY_LOCK:  # idle workers now exit on their own; a busy one was terminated
            _PARENT_ONLY.discard(self.lifeline_write)
        os.close(self.lifeline_write)
        os.close(self.lifeline)


def _stop_quietly(worker: _Worker) -> None:
    """Tell an idle worker to exit, as a batch process first (Linux's SCHED_BATCH: a woken batch
    process does not preempt the one running). A worker woken to exit otherwise takes a core from
    this process, which has the run's last records to write and its result to return: on 2 cores,
    four workers exiting held it back 2 ms (median; 0.2-3.2 ms) against 0.16 ms, on
    `benchmarks/bench_startup.py`'s seed002 script. Not SCHED_IDLE, which did as well on an idle
    machine: on a busy one, a worker at that priority gets almost no CPU to exit with, and the next
    run (which waits for the last one's workers) or the interpreter's exit would wait for it."""
    pid = worker.process.pid
    if pid:  # (never 0: that would be this process)
        with contextlib.suppress(OSError, AttributeError):  # not Linux, or already gone
            os.sched_setscheduler(pid, os.SCHED_BATCH, os.sched_param(0))
    with contextlib.suppress(OSError):
        worker.connection.send(None)


@contextlib.contextmanager
def _frozen_heap():
    """Fork with the parent's objects in the garbage collector's permanent generation: a worker's
    collections then never write to them, so their memory pages stay shared with the parent
    instead of being copied. Measured (benchmarks/bench_worker_memory.py): a step building 2
    million tuples, in a worker forked from a parent with numpy and scikit-learn loaded, ran
    826 -> 653 ms (median) with 55 MB less memory."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()  # the parent collects as before


def _serve(connection: Connection, parent: int, lifeline: int, inherited: list[int], kernel_watch: bool) -> None:
    """A worker's loop: run calls until told to stop, the run's process is gone or Ctrl-C (which
    reaches the whole process group: the run stops, and so does the step)."""
    for descriptor in inherited:  # the parent's alone: a copy here would keep them open past its death
        with contextlib.suppress(OSError):
            os.close(descriptor)
    _die_with_parent(parent, lifeline, kernel_watch)
    # A step's process, as KFP starts one: `_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main` (the
    # command kfp's compiler writes into each component, kfp/dsl/component_factory.py). Steps see the
    # variable, and the kfp they import is the runtime's: no `kfp.Client`, a smaller `kfp.dsl`.
    owned_by_kale_like()
    os.environ["_KFP_RUNTIME"] = "true"
    if "kfp" not in sys.modules:  # a parent that kept kfp out (`programs.preload`): import it now, not in the first step
        import kfp.dsl.executor  # noqa: F401  (10 ms with the variable set, 50 ms without)
    try:
        while True:
            message = connection.recv()
            if message is None:
                break
            call, echo = message
            try:
                result = run_component(call, echo)
            except KeyboardInterrupt:
                connection.send(ComponentResult(False, {}, "interrupted (Ctrl-C)", tail(call.log_path)))
                break
            except Exception as error:  # reported as the step's failure, not as a worker gone silent
                result = ComponentResult(False, {}, f"{type(error).__name__}: {error}", tail(call.log_path))
            connection.send(result)
    except (EOFError, OSError, KeyboardInterrupt):
        pass


def _die_with_parent(parent: int, lifeline: int, kernel_watch: bool) -> None:
    """Make this worker die when the run's process does, even in the middle of a step: a worker left
    behind would hold its memory (and maybe the machine's CPUs) for as long as the step runs."""
    if kernel_watch and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # 1: PR_SET_PDEATHSIG
                if os.getppid() != parent:  # the parent died before the request took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass  # no prctl (an unusual libc): the lifeline thread below does the same

    def watch() -> None:
        with contextlib.suppress(OSError):
            os.read(lifeline, 1)  # returns at end of file: every copy of the write end is closed
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="kale-like-lifeline", daemon=True).start()


_CRASHES = {"SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT", "SIGSYS"}
_STOPS = {"SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"}


def _death(code: int | None) -> str:
    """What a worker's exit code says about how its step ended."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if name == "SIGKILL":
            how = ("was killed by SIGKILL: most often the kernel's out-of-memory killer, when the step needs "
                   "more memory than is free (the kernel log, dmesg, says so), else another process")
        elif name in _CRASHES:
            how = f"was killed by {name}: a crash in native code (a C extension, or a library it loads)"
        elif name in _STOPS:
            how = f"was killed by {name}, sent by another process"
        elif name == "SIGXFSZ":
            how = "was killed by SIGXFSZ: it wrote a file larger than the file size limit (ulimit -f)"
        else:
            how = f"was killed by {name}"
    elif code == 0:
        how = "exited with code 0 without reporting the step's result (sys.exit or os._exit in the step?)"
    else:
        how = f"exited with code {code} (os._exit, or native code that ended the process)"
    return f"the worker process running this step {how}; the step's output so far is in its log"
