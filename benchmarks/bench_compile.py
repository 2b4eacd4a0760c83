"""Compile-time benchmark: cold `python -m kale_like NB --kfp -o OUT -q` against the kfp import floor.

    python benchmarks/bench_compile.py              # 5 repetitions
    python benchmarks/bench_compile.py --quick      # 2 repetitions
    python benchmarks/bench_compile.py --repeat 9 --output results.md

What it measures (all printed as markdown):

1. Cold wall time. Each run is a fresh `python` subprocess (same interpreter as this script). The
   floor, `python -c "import kfp.compiler"`, runs right before every run of ours, so floor and
   ours see the same machine state; the ratio is ours / floor (median/median and min/min). One
   untimed warm-up run of each command comes first, so .pyc files and the page cache are warm
   (that is "cold process", not "cold disk").
2. An in-process breakdown per notebook, each in its own fresh subprocess: the import time of the
   modules the CLI loads, then (imports done, best of 3) notebook_to_graph, generate_module,
   compile_graph minus codegen minus the IR check (= kfp exec + define + compile + temp files),
   the IR check, and the YAML size.
3. `python -X importtime` of `import kale_like.surfaces.cli` alone and of a full CLI run on the
   small notebook: the biggest imports by cumulative time.
4. cProfile of notebook_to_graph + compile_graph on the 500-cell notebook (imports done first),
   top functions by cumulative and by own time, and own time grouped by package.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model, load_avg, wait_for_load

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SMALL = ROOT / "examples" / "notebooks" / "wine_quality.ipynb"
PYTHON = sys.executable
FLOOR_CMD = [PYTHON, "-c", "import kfp.compiler"]
# children import kale_like from the tree this script lives in (not whatever is installed)
# children import kale_like from the tree this script lives in (not whatever is installed), and may
# write .pyc files (an installed package has them; some environments set PYTHONDONTWRITEBYTECODE=1,
# which would make every run recompile kale_like's sources): see --no-pyc
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
ENV.pop("PYTHONDONTWRITEBYTECODE", None)
SIZES = (100, 500)


# --------------------------------------------------------------------------------------------
# helpers


def _timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    return elapsed


def _ours(notebook: Path, out: Path) -> list[str]:
    return [PYTHON, "-m", "kale_like", str(notebook), "--kfp", "-o", str(out), "-q"]


def _prepare(workdir: Path) -> list[dict]:
    """The cases: small example plus generated notebooks (cells and steps counted)."""
    sys.path.insert(0, str(HERE))
    from make_notebooks import write_notebook

    import nbformat

    small = nbformat.read(str(SMALL), as_version=4)
    small_code = sum(1 for c in small.cells if c.cell_type == "code")
    small_steps = len({t for c in small.cells for t in c.metadata.get("tags", []) if t.startswith("step:")})
    cases = [
        {
            "name": "small (wine_quality)",
            "notebook": SMALL,
            "cells": f"{len(small.cells)} ({small_code} code)",
            "steps": small_steps,
        }
    ]
    for n in SIZES:
        path = workdir / f"bench_{n}_cells.ipynb"
        steps = write_notebook(path, n)
        cases.append({"name": f"generated {n} cells", "notebook": path, "cells": str(n), "steps": steps})
    for case in cases:
        case["out"] = workdir / (Path(case["notebook"]).stem + ".yaml")
    return cases


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}"


# --------------------------------------------------------------------------------------------
# 1. cold wall time


def cold_runs(cases: list[dict], repeat: int, workdir: Path) -> tuple[list[float], dict[str, list[float]]]:
    for case in cases:  # warm-up, untimed
        _timed(FLOOR_CMD, workdir)
        _timed(_ours(case["notebook"], case["out"]), workdir)
    floor: list[float] = []
    ours: dict[str, list[float]] = {c["name"]: [] for c in cases}
    for rep in range(repeat):
        for case in cases:
            floor.append(_timed(FLOOR_CMD, workdir))
            ours[case["name"]].append(_timed(_ours(case["notebook"], case["out"]), workdir))
        print(f"  repetition {rep + 1}/{repeat} done (load {load_avg()})", file=sys.stderr)
    return floor, ours


def cold_table(cases: list[dict], floor: list[float], ours: dict[str, list[float]]) -> str:
    f_med, f_min = statistics.median(floor), min(floor)
    rows = [
        "| case | cells | steps | runs | median s | min s | ours/floor (median) | ours/floor (min) |",
        "|---|---|---|---|---|---|---|---|",
        f"| floor: `python -c \"import kfp.compiler\"` | - | - | {len(floor)} | {_fmt(f_med)} | {_fmt(f_min)} | 1.00 | 1.00 |",
    ]
    for case in cases:
        times = ours[case["name"]]
        med, low = statistics.median(times), min(times)
        rows.append(
            f"| {case['name']} | {case['cells']} | {case['steps']} | {len(times)} | {_fmt(med)} | {_fmt(low)} "
            f"| {med / f_med:.2f}x | {low / f_min:.2f}x |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# 2. in-process breakdown (run in a child: `bench_compile.py --_breakdown NOTEBOOK`)


def _breakdown_child(notebook: str) -> None:
    result: dict[str, float | int] = {}
    start = time.perf_counter()
    import kale_like.surfaces.cli  # noqa: F401

    result["import_cli"] = time.perf_counter() - start
    start = time.perf_counter()
    from kale_like.frontends.notebook import notebook_to_graph

    import nbformat  # noqa: F401  (imported lazily by the reader)

    result["import_frontend"] = time.perf_counter() - start
    start = time.perf_counter()
    from kale_like.backends.kfp.compile import compile_graph
    from kale_like.backends.kfp.dsl_codegen import generate_module
    from kale_like.backends.kfp.validate import check_pipeline_spec
    from kfp import compiler  # noqa: F401  (imported lazily by compile_graph)

    result["import_backend"] = time.perf_counter() - start

    def best(fn, n=3):
        times, value = [], None
        for _ in range(n):
            t0 = time.perf_counter()
            value = fn()
            times.append(time.perf_counter() - t0)
        return min(times), times[0], value

    result["graph"], result["graph_first"], graph = best(lambda: notebook_to_graph(notebook))
    result["codegen"], _, source = best(lambda: generate_module(graph))
    result["compile_total"], result["compile_first"], compiled = best(lambda: compile_graph(graph))
    result["check"], _, _ = best(lambda: check_pipeline_spec(compiled.yaml_text))
    result["kfp"] = result["compile_total"] - result["codegen"] - result["check"]
    result["kfp_first"] = result["compile_first"] - result["codegen"] - result["check"]
    result["yaml_bytes"] = len(compiled.yaml_text.encode("utf-8"))
    result["dsl_bytes"] = len(source.encode("utf-8"))
    result["steps"] = len(graph.steps)
    print(json.dumps(result))


def breakdown(cases: list[dict]) -> str:
    rows = [
        "| case | steps | import s: cli / frontend / backend+kfp | step graph s: first / best | DSL codegen s | "
        "kfp define+compile s: first / best | IR check s | YAML bytes | DSL bytes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        done = subprocess.run(
            [PYTHON, __file__, "--_breakdown", str(case["notebook"])],
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        case["breakdown"] = r
        rows.append(
            f"| {case['name']} | {r['steps']} | {r['import_cli']:.3f} / {r['import_frontend']:.3f} / {r['import_backend']:.3f} "
            f"| {r['graph_first']:.3f} / {r['graph']:.3f} | {r['codegen']:.3f} | {r['kfp_first']:.3f} / {r['kfp']:.3f} "
            f"| {r['check']:.3f} | {r['yaml_bytes']:,} | {r['dsl_bytes']:,} |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# 3. import time


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def _importtime(cmd: list[str]) -> tuple[float, list[tuple[str, float]], list[tuple[str, float]]]:
    """Total import time (s); depth-0 imports by cumulative time; self time summed by top-level package."""
    done = subprocess.run([PYTHON, "-X", "importtime", *cmd], cwd=ROOT, env=ENV, capture_output=True, text=True, check=True)
    top: dict[str, float] = {}
    own: dict[str, float] = {}
    for line in done.stderr.splitlines():
        m = _IMPORT_LINE.match(line)
        if not m:
            continue
        name = m.group(4)
        if len(m.group(3)) <= 1:  # depth 0: one space after the bar
            top[name] = top.get(name, 0.0) + int(m.group(2)) / 1e6
        package = name.split(".")[0]
        if package == "kale_like":
            package = ".".join(name.split(".")[:2])
        own[package] = own.get(package, 0.0) + int(m.group(1)) / 1e6
    total = sum(top.values())
    by = lambda kv: -kv[1]  # noqa: E731
    return total, sorted(top.items(), key=by), sorted(own.items(), key=by)


def importtime_report(small_out: Path) -> str:
    out = []
    # the first run of each fills .pyc caches; measure the second
    for _ in range(2):
        cli_total, cli_top, _ = _importtime(["-c", "import kale_like.surfaces.cli"])
    out.append(
        f"`import kale_like.surfaces.cli` alone: {cli_total:.3f} s "
        f"(heavy modules are imported lazily, when a command needs them)."
    )
    out.append("")
    for _ in range(2):
        run_total, run_top, run_own = _importtime(["-m", "kale_like", str(SMALL), "--kfp", "-o", str(small_out), "-q"])
    for _ in range(2):
        floor_total, _, floor_own = _importtime(FLOOR_CMD[1:])
    floor_of = dict(floor_own)
    out.append(
        f"A full CLI run on the small notebook spends {run_total:.3f} s importing "
        f"(the floor `import kfp.compiler`: {floor_total:.3f} s). Depth-0 imports by cumulative time:"
    )
    out.append("")
    out.append("| module (depth 0) | cumulative s |")
    out.append("|---|---|")
    for name, t in run_top[:8]:
        out.append(f"| {name} | {t:.3f} |")
    out.append("")
    out.append("Import self time summed by top-level package (what each package costs wherever it is imported from):")
    out.append("")
    out.append("| package | CLI run s | floor s |")
    out.append("|---|---|---|")
    for name, t in run_own[:15]:
        out.append(f"| {name} | {t:.3f} | {floor_of.get(name, 0.0):.3f} |")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# 4. profile (child: `bench_compile.py --_profile NOTEBOOK`)


def _package_of(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins"
    path = filename.replace("\\", "/")
    if "/kale_like/" in path:
        parts = path.split("/kale_like/", 1)[1].split("/")
        return "kale_like." + ".".join(p.removesuffix(".py") for p in parts[:2] if p)
    m = re.search(r"site-packages/([^/]+)", path)
    if m:
        return m.group(1).removesuffix(".py")
    return "stdlib"


def _profile_child(notebook: str, top: int) -> None:
    from kale_like.backends.kfp.compile import compile_graph
    from kale_like.frontends.notebook import notebook_to_graph

    import nbformat  # noqa: F401
    from kfp import compiler  # noqa: F401

    t0 = time.perf_counter()
    graph = notebook_to_graph(notebook)
    t1 = time.perf_counter()
    compile_graph(graph)
    t2 = time.perf_counter()
    profiler = cProfile.Profile()
    profiler.enable()
    p0 = time.perf_counter()
    graph = notebook_to_graph(notebook)
    p1 = time.perf_counter()
    compile_graph(graph)
    p2 = time.perf_counter()
    profiler.disable()
    stats = pstats.Stats(profiler)

    def name(func):
        filename, line, fn = func
        short = filename.replace("\\", "/")
        for marker in ("/site-packages/", "/lib/python3.11/", "/lib/python3"):
            if marker in short:
                short = short.split(marker, 1)[1]
                break
        if "/kale_like/" in short:
            short = "kale_like/" + short.split("/kale_like/", 1)[1]
        return f"{fn} ({short}:{line})" if line else fn

    lines = [
        f"Imports done and one unprofiled run first (notebook_to_graph {t1 - t0:.3f} s, compile_graph {t2 - t1:.3f} s); "
        f"under cProfile: notebook_to_graph {p1 - p0:.3f} s, compile_graph {p2 - p1:.3f} s "
        "(cProfile inflates pure-Python code far more than C code, so read the shares, not the seconds).",
        "",
    ]
    lines += ["Top functions by cumulative time:", "", "| # | function | calls | cumulative s | own s |", "|---|---|---|---|---|"]
    by_cum = sorted(stats.stats.items(), key=lambda kv: -kv[1][3])
    for i, (func, (cc, nc, tt, ct, _)) in enumerate(by_cum[:top], 1):
        lines.append(f"| {i} | `{name(func)}` | {nc} | {ct:.3f} | {tt:.3f} |")
    lines += ["", "kale_like's own functions by cumulative time:", "", "| # | function | calls | cumulative s | own s |", "|---|---|---|---|---|"]
    ours = [kv for kv in by_cum if "/kale_like/" in kv[0][0].replace("\\", "/")]
    for i, (func, (cc, nc, tt, ct, _)) in enumerate(ours[:top], 1):
        lines.append(f"| {i} | `{name(func)}` | {nc} | {ct:.3f} | {tt:.3f} |")
    lines += ["", "Top functions by own time:", "", "| # | function | calls | own s | cumulative s |", "|---|---|---|---|---|"]
    by_own = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])
    for i, (func, (cc, nc, tt, ct, _)) in enumerate(by_own[:top], 1):
        lines.append(f"| {i} | `{name(func)}` | {nc} | {tt:.3f} | {ct:.3f} |")
    groups: dict[str, float] = {}
    for func, (_, _, tt, _, _) in stats.stats.items():
        key = _package_of(func[0])
        groups[key] = groups.get(key, 0.0) + tt
    lines += ["", "Own time by package:", "", "| package | own s | share |", "|---|---|---|"]
    own_total = sum(groups.values())
    for key, t in sorted(groups.items(), key=lambda kv: -kv[1])[:12]:
        lines.append(f"| {key} | {t:.3f} | {t / own_total:.0%} |")
    print("\n".join(lines))


def profile_report(notebook: Path, top: int) -> str:
    done = subprocess.run(
        [PYTHON, __file__, "--_profile", str(notebook), "--top", str(top)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="cold runs per case (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 repetitions")
    parser.add_argument("--top", type=int, default=10, help="rows in the profile tables (default 10)")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile section")
    parser.add_argument("--output", help="also write the markdown to this file")
    parser.add_argument(
        "--max-load",
        type=float,
        help="first wait (up to 10 minutes) until the 1-minute load average is below this (shared machines)",
    )
    parser.add_argument(
        "--no-pyc", action="store_true", help="keep PYTHONDONTWRITEBYTECODE from the environment (kale_like recompiled each run)"
    )
    parser.add_argument("--_breakdown", help=argparse.SUPPRESS)
    parser.add_argument("--_profile", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._breakdown:
        _breakdown_child(args._breakdown)
        return 0
    if args._profile:
        _profile_child(args._profile, args.top)
        return 0
    repeat = 2 if args.quick else args.repeat
    if args.no_pyc and "PYTHONDONTWRITEBYTECODE" in os.environ:
        ENV["PYTHONDONTWRITEBYTECODE"] = os.environ["PYTHONDONTWRITEBYTECODE"]

    import kfp

    wait_for_load(args.max_load)
    load_before = load_avg()
    with tempfile.TemporaryDirectory(prefix="kale_like_bench_") as tmp:
        workdir = Path(tmp)
        cases = _prepare(workdir)
        print(f"cold runs: {repeat} repetitions x {len(cases)} cases (+ floor before each)", file=sys.stderr)
        floor, ours = cold_runs(cases, repeat, workdir)
        load_after = load_avg()
        print("in-process breakdown ...", file=sys.stderr)
        table2 = breakdown(cases)
        print("import times ...", file=sys.stderr)
        imports = importtime_report(workdir / "importtime.yaml")
        profile = ""
        if not args.no_profile:
            print("profiling the 500-cell notebook ...", file=sys.stderr)
            profile = profile_report(cases[-1]["notebook"], args.top)
    machine = (
        f"Machine: {os.cpu_count()} cores ({cpu_model()}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, kfp {kfp.__version__}; "
        f"{'no .pyc for kale_like (PYTHONDONTWRITEBYTECODE)' if 'PYTHONDONTWRITEBYTECODE' in ENV else '.pyc files written and used'}. "
        f"Load average (1/5/15 min) before the cold runs: {load_before}; after: {load_after}. "
        f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}."
    )
    parts = [
        f"### Cold wall time ({repeat} repetitions, fresh process each)",
        "",
        machine,
        "",
        cold_table(cases, floor, ours),
        "",
        "### In-process breakdown (imports done first; best of 3)",
        "",
        table2,
        "",
        "### Import time (`python -X importtime`)",
        "",
        imports,
    ]
    if profile:
        parts += ["", "### Profile: 500-cell notebook (cProfile)", "", profile]
    text = "\n".join(parts) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
