"""Local-run benchmark: the local executor against plain concurrent.futures, side by side.

    python benchmarks/bench_local.py              # 3 repetitions (~3-4 min on 2 shared cores)
    python benchmarks/bench_local.py --quick      # 1 repetition (~1 min)
    python benchmarks/bench_local.py --repeat 5 --output results.md --max-load 2.0
    python benchmarks/bench_local.py --repeat 15 --cases array --no-profile   # one case only

Every measurement runs in a fresh `python` subprocess (this interpreter), with kfp, numpy and
kale_like's local backend imported and the compiled pipeline loaded before the clock starts; what
is timed is `run_pipeline(...)` (pool start, scheduling, executor, artifacts, cache records,
lineage, pool shutdown). The baselines run in their own fresh subprocesses right next to ours
(interleaved, every repetition, which one goes first alternating), so both see the same machine
state. Cases:

1. Per-step overhead: a code-built Pipeline of 200 independent `return i` steps, and a 200-step
   chain (each step returns its parent's result + 1), thread and process backends on `--workers`
   workers, vs the same 200 trivial functions on a ThreadPoolExecutor / ProcessPoolExecutor (fork)
   of the same width (pool start and shutdown included on both sides; the chain floor submits
   each call after the previous one returned). Each child times a first run ("cold": a fresh
   process, imports done) and a second run in the same process ("warm": component programs
   already loaded), each on an empty store, then a fully cached re-run on the second store (5).
2. 10 x 0.5 s sleeping independent steps on 4 workers vs the ideal 1.5 s (and a ThreadPoolExecutor).
3. 8 CPU-bound steps (a pure Python loop calibrated to ~0.3 s) on the process backend with 2
   workers vs the same 8 calls sequentially in one process; floor: ProcessPoolExecutor(2).
4. A 100 MB float64 numpy array passed between two steps (producer makes it, consumer sums it) vs
   `np.save` + `np.load` + sum in one process; peak memory of the process tree (proportional set
   size summed over the process and its descendants, sampled every 10 ms from /proc, minus the
   same sum just before the run) against the array size, in separate runs (sampling slows what
   it samples).
5. A fully cached re-run of the 200-step pipelines (from the children of 1).

A wall-time breakdown follows (thread backend; timers wrapped around the executor's functions):
the 200-step chain (one task at a time, so the phases add up), its cached re-run, the 200
independent steps and the array case.

A cProfile of the thread case (200 independent steps, cold run) follows: one profiler per thread,
timing thread CPU time (so threads blocked on a lock or a future cost nothing), merged.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import platform
import pstats
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import cpu_model, load_avg, wait_for_load

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
# children import kale_like from the tree this script lives in, may write .pyc files (as an
# installed package has them) and never export spans
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
ENV.pop("PYTHONDONTWRITEBYTECODE", None)
ENV.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)

STEPS = 200
SLEEP_STEPS, SLEEP_SECONDS, SLEEP_WORKERS = 10, 0.5, 4
CPU_STEPS, CPU_SECONDS, CPU_WORKERS = 8, 0.3, 2
ARRAY_ITEMS = 12_500_000  # float64: 100,000,000 bytes
ARRAY_BYTES = ARRAY_ITEMS * 8
GOALS = {"thread": 5.0, "process": 10.0}  # ms/step
CASES = {"overhead": ("independent", "chain"), "sleep": ("sleep",), "cpu": ("cpu",), "array": ("array",)}


# --------------------------------------------------------------------------------------------
# step functions (code-built pipelines read their source; the floors call them directly)


def trivial(i):
    return i


def nap(seconds, i):
    import time

    time.sleep(seconds)
    return i


def spin(n, i):
    total = 0
    for k in range(n):
        total = total + k % 7  # not `+=`: kale_like's free-name analysis takes an augmented local for a global
    return total + i


def make_array(n):
    import numpy as np

    return np.arange(n, dtype=np.float64)


def sum_array(make_array):
    return float(make_array.sum())


def _chain_link(previous):
    return 0 if previous is None else previous + 1


# --------------------------------------------------------------------------------------------
# helpers


def _cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children (process workers after shutdown)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class TreeMemory:
    """Samples the memory of this process and its descendants (PSS and RSS summed) from /proc."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.stop = threading.Event()
        self.pids: list[int] = [os.getpid()]
        self.peak_pss = self.peak_rss = 0
        self.samples = 0
        self.baseline_pss, self.baseline_rss = self._sample()

    def _descendants(self) -> list[int]:
        parents: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    text = handle.read()
            except OSError:
                continue
            ppid = int(text[text.rfind(b")") + 2:].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
        found, todo = [], [os.getpid()]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(parents.get(pid, []))
        return found

    def _sample(self) -> tuple[int, int]:
        pss = rss = 0
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
                    for line in handle:
                        if line.startswith(b"Rss:"):
                            rss += int(line.split()[1]) * 1024
                        elif line.startswith(b"Pss:"):
                            pss += int(line.split()[1]) * 1024
                            break
            except OSError:
                continue
        return pss, rss

    def _loop(self) -> None:
        last_scan = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now - last_scan > 0.1:
                self.pids, last_scan = self._descendants(), now
            pss, rss = self._sample()
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            self.samples += 1
            self.stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def report(self) -> dict:
        return {"peak_pss": self.peak_pss - self.baseline_pss, "peak_rss": self.peak_rss - self.baseline_rss,
                "baseline_pss": self.baseline_pss, "samples": self.samples}


def _touch_memory() -> None:
    """Touch (and free) three times the array's memory just before the clock, on both sides.

    This VM hands memory freed a second or more ago back to its host, and the first touch of
    such memory costs a host fault per page: a 100 MB allocation took 12 ms right after a free,
    110-120 ms two to four seconds later. Which run met that cost depended on timing alone (how
    long its imports took after the previous run exited), not on what it does."""
    import numpy as np

    np.ones(3 * ARRAY_ITEMS)  # allocated, written, freed


def _sampled(spec: dict):
    """Memory sampled for a memory measurement only: reading /proc/PID/smaps_rollup every 10 ms takes
    each sampled process's memory-map lock and walks its page tables, which slows the allocations and
    page faults being timed (a run with a worker process is sampled twice as often as the baseline)."""
    return TreeMemory() if spec.get("memory") else contextlib.nullcontext()


def _calibrate_spin(target: float) -> int:
    """Loop length for `target` seconds of CPU (thread CPU time: what the loop needs, whatever the load)."""
    n = 200_000
    while True:
        best = min(_cpu_timed_call(spin, n, 0) for _ in range(3))
        if best > 0.05:
            return max(1, int(n * target / best))
        n *= 4


def _cpu_timed_call(fn, *args) -> float:
    start = time.thread_time()
    fn(*args)
    return time.thread_time() - start


# --------------------------------------------------------------------------------------------
# preparing the pipelines (parent)


def _write_chain_module(workdir: Path) -> str:
    lines = ['"""200 chained steps: each parameter is named like the step before (so it gets its result)."""', ""]
    for k in range(STEPS):
        name = f"c{k:03d}"
        if k == 0:
            lines += [f"def {name}():", "    return 0", "", ""]
        else:
            lines += [f"def {name}(c{k - 1:03d}):", f"    return c{k - 1:03d} + 1", "", ""]
    (workdir / "bench_chain_steps.py").write_text("\n".join(lines), encoding="utf-8")
    return "bench_chain_steps"


def _build(kind: str, workdir: Path, spin_n: int = 0):
    from kale_like import Pipeline

    if kind == "independent":
        p = Pipeline("bench-independent")
        for i in range(STEPS):
            p.add_step(trivial, name=f"s{i}", params={"i": i})
    elif kind == "chain":
        import importlib

        if str(workdir) not in sys.path:
            sys.path.insert(0, str(workdir))
        module = importlib.import_module(_write_chain_module(workdir))
        p = Pipeline("bench-chain")
        for k in range(STEPS):
            p.add_step(getattr(module, f"c{k:03d}"), name=f"c{k:03d}")
    elif kind == "sleep":
        p = Pipeline("bench-sleep")
        for i in range(SLEEP_STEPS):
            p.add_step(nap, name=f"nap{i}", params={"seconds": SLEEP_SECONDS, "i": i})
    elif kind == "cpu":
        p = Pipeline("bench-cpu")
        for i in range(CPU_STEPS):
            p.add_step(spin, name=f"spin{i}", params={"n": spin_n, "i": i})
    elif kind == "array":
        p = Pipeline("bench-array")
        p.add_step(make_array, params={"n": ARRAY_ITEMS})
        p.add_step(sum_array)
    else:
        raise ValueError(kind)
    return p


def prepare(workdir: Path, cases: tuple[str, ...] = tuple(CASES)) -> dict:
    """Compile each pipeline once (YAML files the children load); time add_step + compile of the 200-step ones."""
    spin_n = _calibrate_spin(CPU_SECONDS) if "cpu" in cases else 0
    info: dict = {"spin_n": spin_n, "yaml": {}, "build": {}}
    for kind in (kind for case in cases for kind in CASES[case]):
        t0 = time.perf_counter()
        p = _build(kind, workdir, spin_n)
        t1 = time.perf_counter()
        text = p.compile()
        t2 = time.perf_counter()
        path = workdir / f"{kind}.yaml"
        path.write_text(text, encoding="utf-8")
        info["yaml"][kind] = str(path)
        info["build"][kind] = {"add_step": t1 - t0, "compile": t2 - t1, "yaml_bytes": len(text.encode())}
        print(f"  compiled {kind}: add_step {t1 - t0:.2f} s, compile {t2 - t1:.2f} s", file=sys.stderr)
    return info


# --------------------------------------------------------------------------------------------
# children: `bench_local.py --_child JSON` prints one JSON line


def _child_imports(numpy_too: bool = False) -> None:
    import kfp  # noqa: F401  (a run from .py/notebook source or a Pipeline has it imported by the compile)
    import kfp.dsl.executor  # noqa: F401

    import kale_like.backends.local.run  # noqa: F401
    import kale_like.runtime.step_runtime  # noqa: F401

    if numpy_too:
        import numpy  # noqa: F401


def _load_ir(yaml_path: str):
    from kale_like.backends.local.ir import PipelineIR

    return PipelineIR.from_file(yaml_path)


def _run_ours(ir, store: Path, backend: str, workers: int, cache: bool = True):
    """One timed `run_pipeline` (the IR is loaded before: not timed)."""
    from kale_like.backends.local.run import RunConfig, run_pipeline

    config = RunConfig(store=store, max_workers=workers, backend=backend, cache=cache, echo=False)
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    result = run_pipeline(ir, {}, config)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    if not result.succeeded:
        raise SystemExit(f"run failed: {result.error}")
    return result, wall, cpu


def _child(spec: dict) -> dict:
    import concurrent.futures as futures
    import multiprocessing

    case, backend, workers = spec["case"], spec.get("backend", "thread"), spec.get("workers", 1)
    tmp = Path(spec["tmp"])
    out: dict = {}
    fork = multiprocessing.get_context("fork")

    def pool(kind: str, width: int) -> futures.Executor:
        if kind == "thread":
            return futures.ThreadPoolExecutor(width)
        return futures.ProcessPoolExecutor(width, mp_context=fork)

    if case in ("independent", "chain"):
        _child_imports()
        ir = _load_ir(spec["yaml"])
        last = "s199" if case == "independent" else "c199"
        expected = STEPS - 1
        for phase in ("cold", "warm"):
            result, out[phase], out[f"{phase}_cpu"] = _run_ours(ir, tmp / phase, backend, workers)
            assert result.value(last) == expected, result.value(last)
        result, out["cached"], out["cached_cpu"] = _run_ours(ir, tmp / "warm", backend, workers)
        assert all(t.status == "cached" for t in result.tasks), {t.status for t in result.tasks}
    elif case in ("floor-independent", "floor-chain"):
        t0 = time.perf_counter()
        with pool(backend, workers) as executor:
            if case == "floor-independent":
                values = [f.result() for f in [executor.submit(trivial, i) for i in range(STEPS)]]
                assert values[-1] == STEPS - 1
            else:
                value = None
                for _ in range(STEPS):
                    value = executor.submit(_chain_link, value).result()
                assert value == STEPS - 1
        out["cold"] = time.perf_counter() - t0
    elif case == "sleep":
        _child_imports()
        _, out["wall"], out["cpu"] = _run_ours(_load_ir(spec["yaml"]), tmp / "store", backend, workers)
    elif case == "floor-sleep":
        t0 = time.perf_counter()
        with pool(backend, workers) as executor:
            list(executor.map(nap, [SLEEP_SECONDS] * SLEEP_STEPS, range(SLEEP_STEPS)))
        out["wall"] = time.perf_counter() - t0
    elif case == "cpu":
        _child_imports()
        _, out["wall"], out["cpu"] = _run_ours(_load_ir(spec["yaml"]), tmp / "store", backend, workers)
    elif case == "floor-cpu":
        t0 = time.perf_counter()
        with pool("process", workers) as executor:
            list(executor.map(spin, [spec["spin_n"]] * CPU_STEPS, range(CPU_STEPS)))
        out["wall"] = time.perf_counter() - t0
    elif case == "sequential-cpu":
        t0 = time.perf_counter()
        for i in range(CPU_STEPS):
            spin(spec["spin_n"], i)
        out["wall"] = time.perf_counter() - t0
    elif case == "array":
        _child_imports(numpy_too=True)
        ir = _load_ir(spec["yaml"])
        _touch_memory()
        with _sampled(spec) as memory:
            result, out["wall"], out["cpu"] = _run_ours(ir, tmp / "store", backend, workers)
        assert result.value("sum_array") == float(ARRAY_ITEMS) * (ARRAY_ITEMS - 1) / 2
        out.update(memory.report() if memory else {})
    elif case == "raw-array":
        _child_imports(numpy_too=True)  # what ours imports before its clock
        import numpy as np

        _touch_memory()
        target = tmp / "raw.npy"
        with _sampled(spec) as memory:
            t0 = time.perf_counter()
            np.save(target, make_array(ARRAY_ITEMS))
            total = float(np.load(target).sum())
            out["wall"] = time.perf_counter() - t0
        assert total == float(ARRAY_ITEMS) * (ARRAY_ITEMS - 1) / 2
        out.update(memory.report() if memory else {})
    else:
        raise ValueError(case)
    return out


def _spawn(spec: dict, workdir: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="run_", dir=workdir) as tmp:
        done = subprocess.run([PYTHON, __file__, "--_child", json.dumps({**spec, "tmp": tmp})], cwd=tmp, env=ENV,
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}): {spec}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# profile child: per-thread cProfile (thread CPU time), merged


_PLUMBING = (("threading.py", "run"), ("threading.py", "_bootstrap"), ("threading.py", "_bootstrap_inner"),
             ("concurrent/futures/thread.py", "_worker"), ("concurrent/futures/thread.py", "run"))


def _short(func) -> str:
    filename, line, fn = func
    short = filename.replace("\\", "/")
    for marker in ("/site-packages/", "/lib/python3.11/", "/lib/python3"):
        if marker in short:
            short = short.split(marker, 1)[1]
            break
    if "/kale_like/" in short:
        short = "kale_like/" + short.split("/kale_like/", 1)[1]
    return f"{fn} ({short}:{line})" if line else fn


def _package_of(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins" if filename.startswith("~") else "component programs (exec'd)"
    path = filename.replace("\\", "/")
    if "/kale_like/" in path:
        return "kale_like." + path.split("/kale_like/", 1)[1].split("/")[0].removesuffix(".py")
    m = re.search(r"site-packages/([^/]+)", path)
    if m:
        return m.group(1).removesuffix(".py")
    if "<frozen" in path:
        return "importlib"
    return "stdlib: " + Path(path).stem


def _profile_child(spec: dict) -> None:
    _child_imports()
    tmp = Path(spec["tmp"])
    phase = spec.get("phase", "cold")
    ir = _load_ir(spec["yaml"])
    if phase == "cached":
        _run_ours(ir, tmp / "store", "thread", spec["workers"])
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original = threading.Thread.run

    def run(self):
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        try:
            original(self)
        finally:
            profiler.disable()
            with lock:
                profiles.append(profiler)

    threading.Thread.run = run
    main = cProfile.Profile(time.thread_time)
    main.enable()
    _, wall, cpu = _run_ours(ir, tmp / "store", "thread", spec["workers"])
    main.disable()
    threading.Thread.run = original
    stats = pstats.Stats(main)
    for profiler in profiles:
        stats.add(profiler)
    total = sum(tt for (_, _, tt, _, _) in stats.stats.values())
    top = spec.get("top", 10)
    lines = [
        f"Profiled {phase} run: wall {wall:.2f} s, process CPU {cpu:.2f} s under the profiler; profiled CPU "
        f"{total:.2f} s over {len(profiles) + 1} threads. cProfile inflates pure-Python code: read shares.",
        "",
        f"Top {top} by cumulative thread-CPU time (thread and pool-worker plumbing frames left out):",
        "",
        "| # | function | calls | cumulative s | share | own s |",
        "|---|---|---|---|---|---|",
    ]
    by_cum = sorted(stats.stats.items(), key=lambda kv: -kv[1][3])
    rows = [kv for kv in by_cum if not any(kv[0][0].endswith(f) and kv[0][2] == n for f, n in _PLUMBING)
            and not kv[0][0].endswith("bench_local.py")]
    for i, (func, (cc, nc, tt, ct, _)) in enumerate(rows[:top], 1):
        lines.append(f"| {i} | `{_short(func)}` | {nc} | {ct:.3f} | {ct / total:.0%} | {tt:.3f} |")
    lines += ["", f"Top {top} by own time:", "", "| # | function | calls | own s | share |", "|---|---|---|---|---|"]
    by_own = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])
    for i, (func, (cc, nc, tt, ct, _)) in enumerate(by_own[:top], 1):
        lines.append(f"| {i} | `{_short(func)}` | {nc} | {tt:.3f} | {tt / total:.0%} |")
    groups: dict[str, float] = {}
    for func, (_, _, tt, _, _) in stats.stats.items():
        key = _package_of(func[0])
        groups[key] = groups.get(key, 0.0) + tt
    lines += ["", "Own time by package:", "", "| package | own s | share |", "|---|---|---|"]
    for key, t in sorted(groups.items(), key=lambda kv: -kv[1])[:12]:
        lines.append(f"| {key} | {t:.3f} | {t / total:.0%} |")
    mine = [kv for kv in by_cum if "/kale_like/" in kv[0][0].replace("\\", "/")]
    lines += ["", f"kale_like's functions by cumulative time (top {top + 5}):", "",
              "| # | function | calls | cumulative s | own s |", "|---|---|---|---|---|"]
    for i, (func, (cc, nc, tt, ct, _)) in enumerate(mine[:top + 5], 1):
        lines.append(f"| {i} | `{_short(func)}` | {nc} | {ct:.3f} | {tt:.3f} |")
    print("\n".join(lines))


def profile_report(yaml_path: str, workers: int, workdir: Path, phase: str, top: int) -> str:
    with tempfile.TemporaryDirectory(prefix="profile_", dir=workdir) as tmp:
        spec = {"yaml": yaml_path, "workers": workers, "tmp": tmp, "phase": phase, "top": top}
        done = subprocess.run([PYTHON, __file__, "--_profile", json.dumps(spec)], cwd=tmp, env=ENV,
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"profile failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip()


# --------------------------------------------------------------------------------------------
# wall-time breakdown child: the executor's phases wrapped with timers (thread backend)


def _breakdown_targets():
    from kfp.dsl import executor as kfp_executor

    from kale_like.backends.local import component_runner, lineage, run, scheduler, workers

    return [
        (scheduler.DagRunner, "_run_task", "task, end to end (`DagRunner._run_task`)", 0),
        (run._TaskExecutor, "execute", "`_TaskExecutor.execute`", 1),
        (run, "component_program", "`component_program` (program text from the IR command)", 2),
        (run, "_task_spec", "`_task_spec`", 2),
        (run._TaskExecutor, "_cache_key", "`_cache_key`", 2),
        (run._TaskExecutor, "_cached", "`_cached` (cache lookup)", 2),
        (run, "_executor_input", "`_executor_input`", 2),
        (workers.ThreadWorkers, "run", "`ThreadWorkers.run` (wait for a free slot, run)", 2),
        (workers, "run_component", "`run_component`", 3),
        (component_runner, "_load", "`_load` (compile and exec of the component program)", 4),
        (component_runner, "compile_program", "`compile_program` (the runtime's code reused)", 5),
        (kfp_executor.Executor, "execute", "kfp `Executor.execute` (the step runtime and the step)", 4),
        (run, "_outcome", "`_outcome`", 2),
        (run._TaskExecutor, "_remember_hashes", "`_remember_hashes` (content hashes of outputs)", 2),
        (run, "hash_below", "`hash_below` (content hash of an output, in line unless large)", 3),
        (run, "hash_path", "`hash_path` (content hash of an artifact, on a hashing thread or for an input)", 3),
        (run._TaskExecutor, "_store", "`_store` (cache record)", 2),
        (lineage.Lineage, "record_task", "`Lineage.record_task` (incl. waiting for its lock)", 2),
        (run._TaskExecutor, "drain", "`_TaskExecutor.drain` (run's end: waits for hashes still running)", 0),
    ]


def _instrument(targets) -> dict:
    totals: dict[str, list] = {}
    lock = threading.Lock()

    def wrap(original, label):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                with lock:
                    entry = totals.setdefault(label, [0, 0.0])
                    entry[0] += 1
                    entry[1] += elapsed

        return wrapper

    for owner, attr, label, _ in targets:
        setattr(owner, attr, wrap(getattr(owner, attr), label))
    return totals


def _breakdown_child(spec: dict) -> None:
    _child_imports(numpy_too=True)
    tmp = Path(spec["tmp"])
    targets = _breakdown_targets()
    totals = _instrument(targets)
    runs = []
    for name, yaml_path, store, steps in (
        ("chain, first run", spec["chain"], "chain", STEPS),
        ("chain, cached re-run", spec["chain"], "chain", STEPS),
        ("independent, first run", spec["independent"], "independent", STEPS),
        ("100 MB array, 2 steps", spec["array"], "array", 2),
    ):
        ir = _load_ir(yaml_path)
        totals.clear()
        _, wall, cpu = _run_ours(ir, tmp / store, "thread", spec["workers"])
        runs.append({"name": name, "wall": wall, "cpu": cpu, "steps": steps,
                     "totals": {k: list(v) for k, v in totals.items()}})
    print(json.dumps({"runs": runs, "rows": [(label, depth) for *_, label, depth in targets]}))


def breakdown_report(info: dict, workers: int, workdir: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="breakdown_", dir=workdir) as tmp:
        spec = {**info["yaml"], "workers": workers, "tmp": tmp}
        done = subprocess.run([PYTHON, __file__, "--_breakdown", json.dumps(spec)], cwd=tmp, env=ENV,
                              capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"breakdown failed:\n{done.stderr[-3000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    runs = data["runs"]
    head = "| phase (indented: inside the one above) | " + " | ".join(
        f"{r['name']}: ms/step (calls)" for r in runs) + " |"
    lines = [
        "Wall time per step spent in each phase, thread backend (timers wrapped around kale_like's functions in "
        "the benchmark process; sums over all threads, so with concurrent tasks a phase can add up to more than "
        "the run's wall time; the chain runs one task at a time, so its column adds up):",
        "",
        head,
        "|---|" + "---|" * len(runs),
        "| **run wall time** | " + " | ".join(f"**{r['wall'] * 1000 / r['steps']:.2f}**" for r in runs) + " |",
        "| run CPU time (all threads) | " + " | ".join(f"{r['cpu'] * 1000 / r['steps']:.2f}" for r in runs) + " |",
    ]
    for label, depth in data["rows"]:
        cells = []
        for r in runs:
            calls, total = r["totals"].get(label, [0, 0.0])
            cells.append(f"{total * 1000 / r['steps']:.2f} ({calls})" if calls else "-")
        lines.append(f"| {'&nbsp;&nbsp;' * depth}{label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the measurements (parent)


def measure(info: dict, repeat: int, workers: int, workdir: Path,
            cases: tuple[str, ...] = tuple(CASES)) -> tuple[dict, list[str]]:
    """Each repetition runs every group: ours and its baseline back to back, in alternating order
    (a run after another that wrote 100 MB can meet that write's writeback and memory compaction:
    whoever runs second would always pay it)."""
    y = info["yaml"]
    plan: list[list[tuple[str, dict]]] = []
    for kind in ("independent", "chain") if "overhead" in cases else ():
        for backend in ("thread", "process"):
            ours = {"case": kind, "yaml": y[kind], "backend": backend, "workers": workers}
            plan.append([(f"{kind}/{backend}/ours", ours),
                         (f"{kind}/{backend}/floor", {"case": f"floor-{kind}", "backend": backend, "workers": workers})])
    for backend in ("thread", "process") if "sleep" in cases else ():
        plan.append([(f"sleep/{backend}/ours", {"case": "sleep", "yaml": y["sleep"], "backend": backend,
                                                "workers": SLEEP_WORKERS}),
                     (f"sleep/{backend}/floor", {"case": "floor-sleep", "backend": backend, "workers": SLEEP_WORKERS})])
    if "cpu" in cases:
        plan.append([("cpu/sequential", {"case": "sequential-cpu", "spin_n": info["spin_n"]}),
                     ("cpu/process/ours", {"case": "cpu", "yaml": y["cpu"], "backend": "process",
                                           "workers": CPU_WORKERS}),
                     ("cpu/floor", {"case": "floor-cpu", "spin_n": info["spin_n"], "workers": CPU_WORKERS})])
    for backend in ("thread", "process") if "array" in cases else ():
        ours = {"case": "array", "yaml": y["array"], "backend": backend, "workers": 2}
        plan.append([(f"array/{backend}/raw", {"case": "raw-array"}), (f"array/{backend}/ours", ours)])
        plan.append([(f"array/{backend}/raw/memory", {"case": "raw-array", "memory": True}),
                     (f"array/{backend}/ours/memory", {**ours, "memory": True})])
    results: dict[str, list[dict]] = {name: [] for group in plan for name, _ in group}
    loads = []
    for rep in range(repeat):
        for group in plan:
            for name, spec in group if rep % 2 == 0 else reversed(group):
                results[name].append(_spawn(spec, workdir))
        loads.append(load_avg())
        print(f"  repetition {rep + 1}/{repeat} done (load {loads[-1]})", file=sys.stderr)
    return results, loads


# --------------------------------------------------------------------------------------------
# tables


def _med(values):
    return statistics.median(values)


def _paired(numerators, denominators) -> float:
    """Median over repetitions of the ratio within each repetition (both measured back to back)."""
    return statistics.median(a / b for a, b in zip(numerators, denominators))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000 / STEPS:.2f}"


def _yes(ok: bool) -> str:
    return "**yes**" if ok else "**no**"


def tables(results: dict, info: dict, workers: int) -> str:
    r = results
    out: list[str] = []
    if "independent/thread/ours" in r:
        out += _overhead_table(r, info, workers)
    if "sleep/thread/ours" in r:
        out += _sleep_table(r)
    if "cpu/sequential" in r:
        out += _cpu_table(r)
    if "array/thread/ours" in r:
        out += _array_table(r)
    if "independent/thread/ours" in r:
        out += _cached_table(r, workers)
    return "\n".join(out).strip("\n")


def _overhead_table(r: dict, info: dict, workers: int) -> list[str]:
    out = [
        f"#### 1. Per-step overhead: {STEPS} trivial steps, {workers} workers (ms/step = run wall time / {STEPS})",
        "",
        "| case | backend | ours cold ms/step (median / min) | ours warm ms/step (median / min) | floor ms/step "
        "(median / min) | ours/floor (paired median) | CPU ms/step (cold) | goal | met (cold median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("independent", "chain"):
        for backend in ("thread", "process"):
            ours, floor = r[f"{kind}/{backend}/ours"], r[f"{kind}/{backend}/floor"]
            cold, warm, cpu = [x["cold"] for x in ours], [x["warm"] for x in ours], [x["cold_cpu"] for x in ours]
            fl = [x["cold"] for x in floor]
            goal = GOALS[backend]
            out.append(
                f"| {kind} | {backend} | {_ms(_med(cold))} / {_ms(min(cold))} | {_ms(_med(warm))} / {_ms(min(warm))} "
                f"| {_ms(_med(fl))} / {_ms(min(fl))} | {_paired(cold, fl):.0f}x | {_ms(_med(cpu))} "
                f"| <= {goal:g} | {_yes(_med(cold) * 1000 / STEPS <= goal)} |"
            )
    b = info["build"]
    out += [
        "",
        "Building the pipeline is not in these figures (`Pipeline.run` compiles first): "
        + "; ".join(f"{kind}: `add_step` x{STEPS} {b[kind]['add_step']:.2f} s + `compile` {b[kind]['compile']:.2f} s "
                    f"= {(b[kind]['add_step'] + b[kind]['compile']) * 1000 / STEPS:.1f} ms/step "
                    f"({b[kind]['yaml_bytes']:,} bytes of YAML)" for kind in ("independent", "chain"))
        + " (one measurement each, in the parent process).",
        "",
    ]
    return out


def _sleep_table(r: dict) -> list[str]:
    out = [
        f"#### 2. {SLEEP_STEPS} x {SLEEP_SECONDS} s sleeping steps, {SLEEP_WORKERS} workers "
        f"(ideal {SLEEP_SECONDS * -(-SLEEP_STEPS // SLEEP_WORKERS):.1f} s)",
        "",
        "| backend | ours s (median / min) | ours/ideal (median / min) | floor s (median / min) | floor/ideal (median) "
        "| goal | met (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    ideal = SLEEP_SECONDS * -(-SLEEP_STEPS // SLEEP_WORKERS)
    for backend in ("thread", "process"):
        ours, fl = [x["wall"] for x in r[f"sleep/{backend}/ours"]], [x["wall"] for x in r[f"sleep/{backend}/floor"]]
        out.append(f"| {backend} | {_med(ours):.3f} / {min(ours):.3f} | {_med(ours) / ideal:.2f}x / "
                   f"{min(ours) / ideal:.2f}x | {_med(fl):.3f} / {min(fl):.3f} | {_med(fl) / ideal:.2f}x | <= 1.15x "
                   f"| {_yes(_med(ours) / ideal <= 1.15)} |")
    out.append("")
    return out


def _cpu_table(r: dict) -> list[str]:
    seq, fl, ours = ([x["wall"] for x in r[k]] for k in ("cpu/sequential", "cpu/floor", "cpu/process/ours"))
    one = _med(seq) / CPU_STEPS
    return [
        f"#### 3. {CPU_STEPS} CPU-bound steps ({CPU_SECONDS} s of CPU each, calibrated; {one:.2f} s wall each "
        f"sequentially, median), process backend, {CPU_WORKERS} workers",
        "",
        "| what | s (median / min) | speedup vs sequential: paired median / median / min |",
        "|---|---|---|",
        f"| sequential, in one process | {_med(seq):.3f} / {min(seq):.3f} | 1.00x |",
        f"| floor: ProcessPoolExecutor({CPU_WORKERS}) | {_med(fl):.3f} / {min(fl):.3f} | {_paired(seq, fl):.2f}x / "
        f"{_med(seq) / _med(fl):.2f}x / {min(seq) / min(fl):.2f}x |",
        f"| ours: process backend, {CPU_WORKERS} workers | {_med(ours):.3f} / {min(ours):.3f} | "
        f"{_paired(seq, ours):.2f}x / {_med(seq) / _med(ours):.2f}x / {min(seq) / min(ours):.2f}x |",
        "",
        f"Ours / floor: {_paired(ours, fl):.2f}x (paired median), {_med(ours) / _med(fl):.2f}x (median), "
        f"{min(ours) / min(fl):.2f}x (min). Each repetition runs sequential, ours and the floor back to back; "
        "the paired median is the median over repetitions of the ratio within one.",
        "",
    ]


def _array_table(r: dict) -> list[str]:
    out = [
        f"#### 4. A {ARRAY_BYTES / 1e6:.0f} MB float64 array from one step to the next (2 workers)",
        "",
        "| what | s (median / min) | / raw: paired median / median / min | time goal (paired) "
        "| peak tree PSS above start, MB (median) | / array | memory goal | peak RSS sum above start, MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    raw_t = [x["wall"] for x in r["array/thread/raw"] + r["array/process/raw"]]
    raw = r["array/thread/raw/memory"] + r["array/process/raw/memory"]
    raw_pss = _med([x["peak_pss"] for x in raw])
    out.append(f"| raw: make, `np.save`, `np.load`, sum | {_med(raw_t):.3f} / {min(raw_t):.3f} | 1.00x | - "
               f"| {raw_pss / 1e6:.0f} | {raw_pss / ARRAY_BYTES:.2f}x | - "
               f"| {_med([x['peak_rss'] for x in raw]) / 1e6:.0f} |")
    for backend in ("thread", "process"):
        t = [x["wall"] for x in r[f"array/{backend}/ours"]]
        rows = r[f"array/{backend}/ours/memory"]
        pss = _med([x["peak_pss"] for x in rows])
        ratio = _paired(t, [x["wall"] for x in r[f"array/{backend}/raw"]])
        out.append(
            f"| ours: {backend} | {_med(t):.3f} / {min(t):.3f} | {ratio:.2f}x / {_med(t) / _med(raw_t):.2f}x / "
            f"{min(t) / min(raw_t):.2f}x "
            f"| <= 1.5x: {_yes(ratio <= 1.5)} | {pss / 1e6:.0f} | {pss / ARRAY_BYTES:.2f}x "
            f"| <= 2.5x: {_yes(pss / ARRAY_BYTES <= 2.5)} | {_med([x['peak_rss'] for x in rows]) / 1e6:.0f} |"
        )
    slow = ", ".join(f"{what} {sum(x > 2 * min(times) for x in times)}/{len(times)}" for what, times in (
        ("raw", raw_t), *((backend, [x["wall"] for x in r[f"array/{backend}/ours"]]) for backend in ("thread", "process"))))
    out += [
        "",
        f"Runs slower than twice the fastest of their kind: {slow}. "
        "Times come from runs without memory sampling; memory from separate runs that sample it "
        "(every 10 ms, which slows what it samples). "
        "PSS (proportional set size) shares each page among the processes mapping it, so pages a forked worker "
        "shares with its parent count once; the RSS sum counts them once per process. The memory-mapped input "
        "of the consumer counts as its pages are read. (`ru_maxrss` is not used: a child started from this "
        "script inherits the parent's high-water mark.)",
        "",
    ]
    return out


def _cached_table(r: dict, workers: int) -> list[str]:
    out = [
        f"#### 5. Fully cached re-run of the {STEPS}-step pipelines ({workers} workers)",
        "",
        "| case | backend | ms/step (median / min) | CPU ms/step | goal | met (median) |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("independent", "chain"):
        for backend in ("thread", "process"):
            rows = r[f"{kind}/{backend}/ours"]
            c = [x["cached"] for x in rows]
            cpu = [x["cached_cpu"] for x in rows]
            out.append(f"| {kind} | {backend} | {_ms(_med(c))} / {_ms(min(c))} | {_ms(_med(cpu))} "
                       f"| <= 5 | {_yes(_med(c) * 1000 / STEPS <= 5)} |")
    return out


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of every measurement (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 repetition")
    parser.add_argument("--workers", type=int, default=4, help="workers for the 200-step cases (default 4)")
    parser.add_argument("--top", type=int, default=10, help="rows in the profile tables (default 10)")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile section")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated subset of {','.join(CASES)} (default: all; the breakdown "
                             "needs all, the profile needs overhead)")
    parser.add_argument("--output", help="also write the markdown to this file")
    parser.add_argument("--max-load", type=float,
                        help="first wait (up to 10 minutes) until the 1-minute load average is below this")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_profile", help=argparse.SUPPRESS)
    parser.add_argument("--_breakdown", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._breakdown:
        _breakdown_child(json.loads(args._breakdown))
        return 0
    if args._child:
        print(json.dumps(_child(json.loads(args._child))))
        return 0
    if args._profile:
        _profile_child(json.loads(args._profile))
        return 0
    repeat = 1 if args.quick else args.repeat
    cases = tuple(dict.fromkeys(c.strip() for c in args.cases.split(",") if c.strip()))
    if not cases or set(cases) - set(CASES):
        parser.error(f"--cases takes a subset of {','.join(CASES)}")

    import kfp
    import numpy

    wait_for_load(args.max_load)
    with tempfile.TemporaryDirectory(prefix="kale_like_bench_local_") as tmp:
        workdir = Path(tmp)
        print("compiling the pipelines ...", file=sys.stderr)
        info = prepare(workdir, cases)
        load_before = load_avg()
        print(f"measuring: {repeat} repetitions (load {load_before})", file=sys.stderr)
        results, loads = measure(info, repeat, args.workers, workdir, cases)
        load_after = load_avg()
        breakdown = ""
        if set(cases) == set(CASES):
            print("wall-time breakdown ...", file=sys.stderr)
            breakdown = breakdown_report(info, args.workers, workdir)
        profiles = []
        if not args.no_profile and "overhead" in cases:
            print("profiling the thread case ...", file=sys.stderr)
            for phase in ("cold", "cached"):
                profiles.append((phase, profile_report(info["yaml"]["independent"], args.workers, workdir, phase,
                                                       args.top)))
    machine = (
        f"Machine: {os.cpu_count()} cores ({cpu_model()}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, kfp {kfp.__version__}, numpy {numpy.__version__}. "
        f"Load average (1/5/15 min) before: {load_before}; after each repetition: {' | '.join(loads)}; "
        f"after: {load_after}. CPU loop: spin(n={info['spin_n']:,}). Date: {time.strftime('%Y-%m-%d %H:%M %Z')}."
    )
    parts = [f"### Local runs ({repeat} repetitions, a fresh process per measurement)", "", machine, "",
             tables(results, info, args.workers)]
    if breakdown:
        parts += ["", "### Where the time goes", "", breakdown]
    for phase, text in profiles:
        title = "first run, 200 independent steps" if phase == "cold" else "fully cached re-run, 200 independent steps"
        parts += ["", f"### Profile: thread backend, {title} (cProfile, thread CPU time)", "", text]
    text = "\n".join(parts) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
