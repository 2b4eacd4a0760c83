"""Local runs (`kale_like.run`, `python -m kale_like SOURCE --run`, `lineage`): the values each step saw.

The pipelines under tests/fixtures/local/ make every step append what it received, as one JSON
line, to the file named by their `log` parameter. Those files run as plain Python too (`@step`
and `@pipeline` return the functions, `parallel` its items), so the plain run is the oracle: a local
run must leave the same lines, in any order, with the same JSON types (`1` and `1.0` differ).
The example pipelines are checked against their own step functions called directly, the example
notebooks against a top-to-bottom nbclient run (tests/runs.py).

Runs happen in-process with `store=tmp_path/...` and `echo=False`; the command line is run
in-process where only exit codes and output matter, and as a subprocess where its stderr is the
subject. Known defects are `xfail(strict=True)` with the reason starting "BUG:".
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import kale_like
from kale_like.errors import KaleLikeError
from kale_like.surfaces.cli import main

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
LOCAL = TESTS / "fixtures" / "local"
EXAMPLE_PIPELINES = REPO / "examples" / "pipelines"
EXAMPLE_NOTEBOOKS = REPO / "examples" / "notebooks"


# ---------------------------------------------------------------------------
# Helpers


def load_module(path: Path):
    """Import a pipeline file as plain Python (the oracle), under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"_kl_plain_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_MODULES: dict[Path, object] = {}


def plain(path: Path):
    if path not in _MODULES:
        _MODULES[path] = load_module(path)
    return _MODULES[path]


class Logs:
    """Fresh note files under tmp_path, one per run."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0

    def new(self) -> Path:
        self.count += 1
        return self.folder / f"notes-{self.count}.jsonl"


@pytest.fixture
def logs(tmp_path) -> Logs:
    return Logs(tmp_path)


def lines(path: Path) -> list[str]:
    """The notes of one run, sorted (steps run concurrently, so order is not part of the contract)."""
    return sorted(path.read_text(encoding="utf-8").splitlines()) if path.exists() else []


def notes(path: Path) -> list[dict]:
    return [json.loads(line) for line in lines(path)]


def oracle(path: Path, pipeline: str, log: Path, **params) -> list[str]:
    """The notes of the pipeline function run as plain Python."""
    getattr(plain(path), pipeline)(log=str(log), **params)
    return lines(log)


def run(source, tmp_path: Path, log: Path | None = None, *, pipeline=None, params=None, store="store",
        **options):
    """`kale_like.run` into tmp_path/store, quiet; `result.produced` maps labels to output parameters."""
    params = dict(params or {})
    if log is not None:
        params["log"] = str(log)
    options.setdefault("echo", False)
    produced: dict[str, dict] = {}

    def observe(event) -> None:  # output parameters of done and cached tasks alike, by label
        if event.status in ("done", "cached"):
            produced[event.label] = dict(event.outputs.get("parameters", {}))

    result = kale_like.run(source, params, pipeline=pipeline, store=tmp_path / store, observer=observe, **options)
    result.produced = produced
    return result


_COMPILED: dict[tuple[str, str], Path] = {}


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """`compiled(path, pipeline) -> YAML path`, compiled once per session (for pipelines run many times)."""

    def compile_(path: Path, pipeline: str) -> Path:
        key = (str(path), pipeline)
        if key not in _COMPILED:
            target = tmp_path_factory.mktemp("yaml") / f"{path.stem}-{pipeline}.yaml"
            target.write_text(kale_like.compile(path, pipeline), encoding="utf-8")
            _COMPILED[key] = target
        return _COMPILED[key]

    return compile_


def statuses(result) -> dict[str, str]:
    """label -> status (labels that repeat get a list of statuses)."""
    table: dict[str, object] = {}
    for report in result.tasks:
        if report.label in table:
            previous = table[report.label]
            table[report.label] = (previous if isinstance(previous, list) else [previous]) + [report.status]
        else:
            table[report.label] = report.status
    return table


def task_folder(result, label: str) -> Path:
    """Where a task's outputs live: <run>/root/for-loop-1@0/train for root/for-loop-1[0]/train."""
    return result.store / re.sub(r"\[(\d+)\]", r"@\1", result.task(label).path)


def output_parameters(result, label: str) -> dict:
    """A task's output parameters, as the run reported them (a cached task's come from the cache)."""
    assert result.task(label).status in ("done", "cached"), result.task(label)
    return result.produced[label]


def task_log(result, label: str) -> list[str]:
    return Path(result.task(label).log_path).read_text(encoding="utf-8").splitlines()


def max_overlap(path: Path) -> int:
    """The most steps that were running at the same moment, from their (start, end) notes."""
    events = []
    for note in notes(path):
        events += [(note["start"], 1), (note["end"], -1)]
    running = most = 0
    for _, change in sorted(events):  # an end sorts before a start at the same instant
        running += change
        most = max(most, running)
    return most


def cli(*argv, cwd=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kale_like", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=timeout)


# ---------------------------------------------------------------------------
# The examples give the values their own step functions give


def test_every_example_is_covered():
    assert {p.name for p in EXAMPLE_PIPELINES.glob("*.py")} == {
        "cross_region_eval.py", "kale_loop_item.py", "nested_train_eval.py", "train_many_pick_best.py"}
    assert {p.name for p in EXAMPLE_NOTEBOOKS.glob("*.ipynb")} == {
        "numpy_stats.ipynb", "parallel_branches.ipynb", "wine_quality.ipynb"}


@pytest.mark.slow
def test_example_train_many_pick_best(tmp_path):
    path = EXAMPLE_PIPELINES / "train_many_pick_best.py"
    module = plain(path)
    data = module.prepare(400)
    scores = [module.train(data, seed) for seed in [1, 2, 3, 4, 5]]
    best = module.pick_best(scores)

    assert 0.8 <= best < 0.9, "the two thresholds below must take different branches"
    for threshold in (0.8, 0.9):  # the second run reuses the first one's prepare and train steps
        result = run(path, tmp_path, params={"threshold": threshold})
        assert result.succeeded, result.error
        assert [output_parameters(result, f"train[{i}]")["Output"] for i in range(5)] == scores
        assert output_parameters(result, "pick-best")["Output"] == best
        taken, other = ("deploy", "alert") if best >= threshold else ("alert", "deploy")
        assert statuses(result)[taken] == "done" and statuses(result)[other] == "skipped"
        assert output_parameters(result, taken)["Output"] == getattr(module, taken)(best)
        assert list(result.outputs.values()) == [getattr(module, taken)(best)]  # the pipeline's return value
        if threshold == 0.8:
            assert task_log(result, "pick-best") == [f"scores: {scores}"]
    assert {statuses(result)[f"train[{i}]"] for i in range(5)} | {statuses(result)["prepare"]} == {"cached"}


def test_example_cross_region_eval(tmp_path):
    path = EXAMPLE_PIPELINES / "cross_region_eval.py"
    module = plain(path)
    model = module.train(50)
    expected = {region: module.evaluate(model, region, drift) for region, drift in module.REGIONS.items()}
    result = run(path, tmp_path)
    assert result.succeeded, result.error
    labels = [f"evaluate[{i}]" for i in range(len(expected))]
    assert sorted(output_parameters(result, label)["Output"] for label in labels) == sorted(expected.values())
    assert sorted(line for label in labels for line in task_log(result, label)) == sorted(
        f"{region}: {score}" for region, score in expected.items())
    worst = module.report(list(expected.values()))
    assert task_log(result, "report") == [f"worst region score: {worst}"]


def test_example_nested_train_eval(tmp_path):
    path = EXAMPLE_PIPELINES / "nested_train_eval.py"
    module = plain(path)
    datasets = ["small", "medium", "large"]
    expected = [module.train_and_eval(dataset=d, threshold=10.0) for d in datasets]
    result = run(path, tmp_path)
    assert result.succeeded, result.error
    # steps of a nested pipeline are labelled with the call's task: train-and-eval/score[i]
    assert [output_parameters(result, f"train-and-eval/score[{i}]")["Output"] for i in range(3)] == expected
    assert [output_parameters(result, f"train-and-eval/load[{i}]")["Output"] for i in range(3)] == [module.load(d) for d in datasets]
    assert task_log(result, "summarize") == [f"scores: {expected}"]


def test_example_kale_loop_item(tmp_path):
    """Unseeded `random.sample`: the rules are checked against what generate returned.

    Without the cache: printer2[0][1] and printer2[1][1] are the same task with the same input, so one
    may be a cache hit of the other within the run, and print nothing.
    """
    result = run(EXAMPLE_PIPELINES / "kale_loop_item.py", tmp_path, cache=False)
    assert result.succeeded, result.error
    res = output_parameters(result, "generate")["Output"]
    assert len(res) == 2 and len(set(res)) == 2 and all(type(v) is int and 0 <= v < 20 for v in res)
    arg_list, const_list = [0, 1], [2, 3]
    for a, x in enumerate(res):
        assert task_log(result, f"printer[{a}]") == [str(float(x) * float(x))]
        for b, i in enumerate(arg_list):
            assert task_log(result, f"printer2[{a}][{b}]") == [str(i)]
            for c, j in enumerate(const_list):
                assert task_log(result, f"printer3[{a}][{b}][{c}]") == [str(float(x) * float(i) * float(j))]
    assert task_log(result, "printer4[0]") == task_log(result, "printer4[1]") == ["Hello!"]
    # generate, the generated step that hands its untyped items to the loop as JSON texts, the loops' steps
    assert output_parameters(result, "generate-res-items")["Output"] == [str(v) for v in res]
    assert len(result.tasks) == 1 + 1 + 2 + 4 + 8 + 2


EXAMPLE_NOTEBOOK_PATHS = sorted(EXAMPLE_NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("notebook", EXAMPLE_NOTEBOOK_PATHS, ids=[p.stem for p in EXAMPLE_NOTEBOOK_PATHS])
def test_example_notebook_metrics_match_a_plain_run(notebook, tmp_path, monkeypatch):
    from runs import collect_run, metric_names, run_notebook

    monkeypatch.chdir(notebook.parent)
    yaml_path = tmp_path / "p.yaml"
    yaml_path.write_text(kale_like.compile(notebook), encoding="utf-8")
    result = run(notebook, tmp_path)
    assert result.succeeded, result.error
    view = tmp_path / "view"  # runs.collect_run reads <pipeline root>/<one run>/<task>/executor_output.json
    view.mkdir()
    (view / result.run_id).symlink_to(result.store / "root", target_is_directory=True)
    pipeline_run = collect_run(yaml_path, view)
    pipeline_run.load_all()  # every value passed between steps reads back
    names = metric_names(notebook)
    expected = run_notebook(notebook, names).values
    assert sorted(pipeline_run.metrics) == sorted(names)
    for name in names:
        assert math.isclose(pipeline_run.metrics[name], expected[name], rel_tol=1e-9, abs_tol=1e-12), (
            name, pipeline_run.metrics[name], expected[name])


# ---------------------------------------------------------------------------
# Loops: over parameters, step outputs, constants, literals, range, dict items; nested; Collected

LOOPS = LOCAL / "loops.py"


@pytest.mark.parametrize("pipeline", ["loop_param", "loop_output", "loop_const", "loop_range", "loop_dict",
                                      "loop_nested"])
def test_loop_steps_see_what_plain_python_passes(pipeline, tmp_path, logs):
    expected = oracle(LOOPS, pipeline, logs.new())
    log = logs.new()
    result = run(LOOPS, tmp_path, log, pipeline=pipeline)
    assert result.succeeded, result.error
    assert lines(log) == expected


def test_loop_over_parameter_argument_and_collected_ints(tmp_path, logs):
    log = logs.new()
    result = run(LOOPS, tmp_path, log, pipeline="loop_param", params={"xs": [4, 5, 6, 7]})
    assert result.succeeded, result.error
    seen = notes(log)
    assert sorted(n["x"] for n in seen if n["what"] == "param") == [4, 5, 6, 7]
    (collected,) = [n["xs"] for n in seen if n["what"] == "param-total"]
    assert collected == [40, 50, 60, 70] and all(type(v) is int for v in collected)
    assert {statuses(result)[f"see[{i}]"] for i in range(4)} == {"done"}


def test_loop_over_step_output_of_any_length(tmp_path, logs):
    for n, expected in ((5, [10, 20, 30, 40, 50]), (0, [])):
        log = logs.new()
        result = run(LOOPS, tmp_path, log, pipeline="loop_output", params={"n": n})
        assert result.succeeded, result.error
        assert [v["xs"] for v in notes(log) if v["what"] == "output-total"] == [expected]


def test_nested_loop_with_inner_list_from_outside_the_outer_loop(tmp_path, logs):
    log = logs.new()
    result = run(LOOPS, tmp_path, log, pipeline="loop_nested", params={"rows": [2, 5]})
    assert result.succeeded, result.error
    seen = notes(log)
    pairs = sorted((n["r"], n["c"]) for n in seen if n["what"] == "pair")
    assert pairs == [(r, c) for r in (2, 5) for c in (1, 2, 3)]
    (flat,) = [n["xs"] for n in seen if n["what"] == "nested-total"]
    assert flat == sorted([2, 4, 6, 5, 10, 15]) and all(type(v) is int for v in flat)
    assert statuses(result)["pair-product[1][2]"] == "done"


def test_loop_with_an_empty_body_runs_or_is_refused(tmp_path, logs):
    log = logs.new()
    try:
        result = run(LOOPS, tmp_path, log, pipeline="loop_empty_body")
    except KaleLikeError:
        return  # refusing the shape at compile time is a fine answer too
    assert result.succeeded, result.error
    assert lines(log) == oracle(LOOPS, "loop_empty_body", logs.new())


ARTIFACTS = LOCAL / "artifacts.py"


def test_collected_artifacts_reach_the_consumer_as_values(tmp_path, logs):
    expected = oracle(ARTIFACTS, "collected_artifacts", logs.new())
    log = logs.new()
    result = run(ARTIFACTS, tmp_path, log, pipeline="collected_artifacts")
    assert result.succeeded, result.error
    assert lines(log) == expected
    (merged,) = notes(log)
    assert merged["shards"] == [[1, [1, 1]], [2, [2, 4]], [3, [3, 9]]] and merged["types"] == ["dict"]
    for i in range(3):  # each shard is a serialised value directory
        assert json.loads((task_folder(result, f"shard[{i}]") / "parts" / "value.json").read_text()) == {
            "shard": i + 1, "values": [i + 1, (i + 1) ** 2]}


# ---------------------------------------------------------------------------
# Parallelism and workers

TIMING = LOCAL / "timing.py"


def test_parallelism_limit_caps_overlapping_iterations(tmp_path, logs):
    log = logs.new()
    result = run(TIMING, tmp_path, log, pipeline="limited", params={"seconds": 0.5}, max_workers=4)
    assert result.succeeded, result.error
    assert len(notes(log)) == 6
    assert max_overlap(log) == 2


def test_loop_without_limit_uses_every_worker_and_no_more(tmp_path, logs):
    log = logs.new()
    result = run(TIMING, tmp_path, log, pipeline="unlimited", params={"seconds": 0.5}, max_workers=3)
    assert result.succeeded, result.error
    assert 2 <= max_overlap(log) <= 3


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_one_worker_runs_steps_one_at_a_time(backend, tmp_path, logs):
    log = logs.new()
    result = run(TIMING, tmp_path, log, pipeline="four_independent", max_workers=1, backend=backend)
    assert result.succeeded, result.error
    assert len(notes(log)) == 4 and max_overlap(log) == 1


def test_a_loop_over_many_items_runs_on_a_few_threads(tmp_path, logs):
    """Iterations are taken in order by at most max_workers x 4 runners, not a thread each."""
    log = logs.new()
    before = threading.active_count()  # threads earlier tests may have left in this process
    result = run(TIMING, tmp_path, log, pipeline="many_items", params={"items": list(range(300))}, max_workers=2,
                 backend="thread")
    assert result.succeeded, result.error
    seen = notes(log)
    assert sorted(n["i"] for n in seen) == list(range(300))
    assert max(n["alive"] for n in seen) - before < 40, (max(n["alive"] for n in seen), before)


def test_progress_counts_pending_running_and_done_work(tmp_path, logs):
    """The progress lines' counts: a loop's iterations are pending from the loop's start, and every
    line accounts for every task known so far (the three at the top level from the first line on,
    the loop's three iterations from its start)."""
    import io

    from kale_like.surfaces.run_report import ConsoleProgress

    stream = io.StringIO()
    result = kale_like.run(LOOPS, {"log": str(logs.new())}, pipeline="loop_param", backend="thread", max_workers=1,
                           store=tmp_path / "store", echo=False, observer=ConsoleProgress(stream))
    assert result.succeeded, result.error
    progress = [line for line in stream.getvalue().splitlines() if line.startswith("[kale-like] ")]
    tallies = [{kind: int(n) for n, kind in re.findall(r"(\d+) ([a-z ]+?)(?:,|$)", line.rsplit("  (", 1)[1][:-1])}
               for line in progress]
    # started and done, for the two generated steps that keep an empty list from failing the total
    # (kale_like/lowering/empty_loops.py), the 3 iterations and the total
    assert len(progress) == 12, progress
    known = [sum(tally.values()) for tally in tallies]
    assert known == sorted(known) and known[0] == 3 and known[-1] == 6, progress
    assert tallies[0]["pending"] >= 1 and tallies[0]["running"] >= 1, progress[0]
    assert tallies[-1] == {"done": 6}, progress[-1]


def test_independent_steps_run_concurrently(tmp_path, logs):
    log = logs.new()
    result = run(TIMING, tmp_path, log, pipeline="four_independent", max_workers=4, params={"seconds": 0.5})
    assert result.succeeded, result.error
    assert max_overlap(log) >= 2


def test_a_run_started_before_its_pipeline_is_known_runs_as_wide_as_the_pipeline_allows(tmp_path, logs):
    """`LocalRun` forks its workers before the IR exists (`Pipeline.run` does, while the pipeline
    compiles): a guess of one task at a time forks more once the IR shows four independent steps,
    and the four overlap, on max_workers 4."""
    from kale_like.backends.local.run import LocalRun, RunConfig
    from kale_like.surfaces.api import pipeline_ir

    log = logs.new()
    ir = pipeline_ir(TIMING, "four_independent")
    with LocalRun(RunConfig(store=tmp_path / "store", max_workers=4, echo=False), most_tasks=1) as local:
        result = local.run(ir, {"log": str(log), "seconds": 0.5})
    assert result.succeeded, result.error
    assert max_overlap(log) == 4


def test_workers_forked_beyond_what_the_pipeline_can_use_are_let_go():
    from kale_like.backends.local.workers import ProcessWorkers

    policy = os.sched_getscheduler(0)
    pool = ProcessWorkers(4)
    first = [worker.process for worker in pool.all]
    pool.resize(2)
    kept = [worker.process for worker in pool.all]
    gone = [process for process in first if process not in kept]
    for process in gone:
        process.join(timeout=10)
    pool.close_soon()
    for process in kept:
        process.join(timeout=10)
    assert len(kept) == 2 and len(gone) == 2 and [process.exitcode for process in first] == [0, 0, 0, 0]
    assert os.sched_getscheduler(0) == policy  # workers exit as batch processes; this process keeps its own


def test_a_run_that_never_ran_releases_its_store(tmp_path):
    """Leaving a `LocalRun` before it ran (the compile it waited for failed) stops its workers and
    releases the store's lock: the next run of the store removes nothing of it, and runs."""
    from kale_like.backends.local.run import LocalRun, RunConfig

    config = RunConfig(store=tmp_path / "store", max_workers=2, echo=False)
    with pytest.raises(KaleLikeError):
        with LocalRun(config) as local:
            workers = [worker.process for worker in local.pool.all]
            raise KaleLikeError("the compile failed", None)
    for process in workers:
        process.join(timeout=10)
    assert [process.exitcode for process in workers] == [0, 0]
    assert list((tmp_path / "store" / "running").iterdir()) == []
    assert run(TIMING, tmp_path, pipeline="four_independent", params={"seconds": 0}).succeeded


def test_cli_max_workers_1(tmp_path, logs, capsys):
    log = logs.new()
    code = main([str(TIMING), "--pipeline", "four_independent", "--run", "--store", str(tmp_path / "store"),
                 "--max-workers", "1", "-q", "--param", f"log={log}"])
    assert code == 0, capsys.readouterr().err
    assert len(notes(log)) == 4 and max_overlap(log) == 1


BACKEND_CASES = [(LOOPS, "loop_nested"), (ARTIFACTS, "collected_artifacts"), (ARTIFACTS, "artifact_chain")]


@pytest.mark.parametrize(("path", "pipeline"), BACKEND_CASES, ids=[c[1] for c in BACKEND_CASES])
def test_thread_and_process_backends_give_the_same_results(path, pipeline, tmp_path, logs):
    seen = {}
    for backend in ("thread", "process"):
        log = logs.new()
        result = run(path, tmp_path, log, pipeline=pipeline, backend=backend, store=backend)
        assert result.succeeded, result.error
        outputs = {r.label: output_parameters(result, r.label) for r in result.tasks}
        seen[backend] = (lines(log), statuses(result), outputs)
    assert seen["thread"] == seen["process"]
    assert seen["thread"][0], "the steps noted nothing"


def test_unknown_backend_and_zero_workers_are_refused(tmp_path):
    with pytest.raises(KaleLikeError, match="backend"):
        run(TIMING, tmp_path, pipeline="four_independent", backend="gpu")
    with pytest.raises(KaleLikeError, match="max_workers"):
        run(TIMING, tmp_path, pipeline="four_independent", max_workers=0)


# ---------------------------------------------------------------------------
# If / elif / else, OneOf, nested pipelines

BRANCHES = LOCAL / "branches.py"
BRANCH_CASES = list(itertools.product([1, 3, 6], ["a", "b", "z"], [True, False]))


@pytest.mark.parametrize(("n", "tag", "flag"), BRANCH_CASES,
                         ids=[f"n={n}-tag={t}-flag={f}" for n, t, f in BRANCH_CASES])
def test_if_elif_else_with_and_or_not_in_picks_the_branch_python_picks(n, tag, flag, tmp_path, logs, compiled):
    expected = oracle(BRANCHES, "branches", logs.new(), n=n, tag=tag, flag=flag)
    log = logs.new()
    result = run(compiled(BRANCHES, "branches"), tmp_path, log, params={"n": n, "tag": tag, "flag": flag})
    assert result.succeeded, result.error
    assert lines(log) == expected


def test_branch_not_taken_is_skipped_and_nothing_in_it_runs(tmp_path, logs):
    log = logs.new()
    result = run(BRANCHES, tmp_path, log, pipeline="gate", params={"n": 3})
    assert result.succeeded, result.error
    assert notes(log) == [{"label": "deploy", "what": "use"}, {"what": "deploy"}]
    done = [r for r in result.tasks if r.status == "done"]
    assert sorted(r.label for r in done) == ["label-for", "measure", "use"]
    skipped = [r.label for r in result.tasks if r.status == "skipped"]
    assert skipped and all(r.status in ("done", "skipped") for r in result.tasks), skipped


def test_steps_of_a_branch_not_taken_show_as_skipped(tmp_path, logs):
    result = run(BRANCHES, tmp_path, logs.new(), pipeline="gate", params={"n": 3})
    skipped_steps = [r.label for r in result.tasks if r.status == "skipped" and not r.label.startswith("condition")]
    assert len(skipped_steps) == 2, [(r.label, r.status) for r in result.tasks]


@pytest.mark.parametrize("n", [0, 1, 3])
def test_oneof_takes_the_value_of_the_branch_that_ran(n, tmp_path, logs, compiled):
    expected = oracle(BRANCHES, "chosen", logs.new(), n=n)
    log = logs.new()
    result = run(compiled(BRANCHES, "chosen"), tmp_path, log, params={"n": n})
    assert result.succeeded, result.error
    assert lines(log) == expected
    assert [v["label"] for v in notes(log) if v["what"] == "use"] == [{0: "zero", 1: "low", 3: "high"}[n]]
    # the two branches not taken: each its step and the generated step that ends a OneOf branch
    # (kale_like/lowering/branch_state.py)
    skipped = sorted(r.label for r in result.tasks if r.status == "skipped")
    assert len(skipped) == 4 and sum(1 for label in skipped if "branch" in label and label.endswith("done")) == 2, \
        skipped


@pytest.mark.parametrize("x", [1, 2])
def test_nested_pipelines_at_top_in_a_loop_and_in_a_branch(x, tmp_path, logs):
    expected = oracle(BRANCHES, "nest", logs.new(), x=x, xs=[3, 4])
    log = logs.new()
    result = run(BRANCHES, tmp_path, log, pipeline="nest", params={"x": x, "xs": [3, 4]})
    assert result.succeeded, result.error
    assert lines(log) == expected
    assert sorted(v["value"] for v in notes(log) if v["what"] == "in-loop") == [6, 8]


def test_two_uses_of_a_nested_pipeline_keep_separate_labels_and_logs(tmp_path, logs):
    result = run(BRANCHES, tmp_path, logs.new(), pipeline="twice", params={"a": 1, "b": 2})
    assert result.succeeded, result.error
    shouts = [r for r in result.tasks if r.label.startswith("shout")]
    assert len(shouts) == 2
    assert len({r.label for r in shouts}) == 2, [r.label for r in shouts]
    assert sorted(Path(r.log_path).read_text().strip() for r in shouts) == ["shout got 1", "shout got 2"]


def test_result_outputs_hold_the_main_pipelines_return_value(tmp_path, logs):
    result = run(BRANCHES, tmp_path, logs.new(), pipeline="shouting", params={"x": 7})
    assert result.succeeded, result.error
    assert list(result.outputs.values()) == [7]


# ---------------------------------------------------------------------------
# Failures and retries

FAILURES = LOCAL / "failures.py"


def test_each_task_keeps_its_own_log_and_folder(tmp_path):
    """An iteration `shout[2]` and the task KFP names `shout-2` do not share a log file or folder."""
    result = run(LOCAL / "logs.py", tmp_path)
    assert result.succeeded, result.error
    expected = {"shout[0]": 10, "shout[1]": 11, "shout[2]": 12, "shout-2": 1, "shout-3": 2}
    assert {t.label for t in result.tasks} == set(expected)
    assert len({t.log_path for t in result.tasks}) == 5
    for label, x in expected.items():
        assert Path(result.task(label).log_path).read_text() == f"shout {x}\n", label
        assert (task_folder(result, label) / "executor_output.json").exists(), label


def test_failing_step_fails_the_run_and_independent_work_finishes(tmp_path, logs):
    log = logs.new()
    result = run(FAILURES, tmp_path, log, pipeline="one_fails", params={"seconds": 1.0})
    assert result.status == "FAILED" and not result.succeeded
    explode = result.task("explode")
    assert explode.status == "failed" and explode.error == "ValueError: boom: the model diverged"
    assert "boom: the model diverged" in result.error
    assert "about to fail: the data was [1, 2, 3]" in Path(explode.log_path).read_text()
    assert statuses(result)["independent"] == "done" and statuses(result)["produce"] == "done"
    assert statuses(result)["after-explode"] != "done" and "explode" in result.task("after-explode").error
    assert [v["what"] for v in notes(log)] == ["explode-start", "independent-done", "produce"]
    assert not task_folder(result, "explode").exists(), "a failed step left outputs behind"
    assert (task_folder(result, "produce") / "executor_output.json").exists()


def test_cli_failure_exits_1_and_names_the_error(tmp_path, logs):
    log = logs.new()
    done = cli(FAILURES, "--pipeline", "one_fails", "--run", "--store", tmp_path / "store", "--param", f"log={log}",
               "--param", "seconds=0.5")
    assert done.returncode == 1, done.stderr
    assert "explode: FAILED" in done.stderr
    assert "error: ValueError: boom: the model diverged" in done.stderr
    assert re.search(r"full log: .*explode\.log", done.stderr)
    assert "independent-done" in log.read_text()
    assert "[explode] about to fail: the data was [1, 2, 3]" in done.stdout  # the step's output, prefixed
    assert re.search(r"^explode\s+failed", done.stdout, re.M)  # the summary


def test_cli_failure_shows_the_log_tail_on_stderr(tmp_path, logs):
    done = cli(FAILURES, "--pipeline", "one_fails", "--run", "-q", "--store", tmp_path / "store",
               "--param", f"log={logs.new()}", "--param", "seconds=0.1")
    assert done.returncode == 1
    assert "about to fail: the data was [1, 2, 3]" in done.stderr, done.stderr


def test_step_failing_halfway_through_its_output_leaves_nothing(tmp_path, logs):
    from kfp import compiler

    sys.path.insert(0, str(LOCAL))
    try:
        import kfp_failures
    finally:
        sys.path.remove(str(LOCAL))
    pipeline_yaml = tmp_path / "half.yaml"
    compiler.Compiler().compile(kfp_failures.half_written, str(pipeline_yaml))
    log = logs.new()
    result = run(pipeline_yaml, tmp_path, log)
    assert result.status == "FAILED"
    assert result.task("half-write").error == "RuntimeError: disk full halfway through"
    assert statuses(result)["fine"] == "done" and statuses(result)["read-back"] != "done"
    assert log.read_text() == "fine ran\n"
    assert not task_folder(result, "half-write").exists()
    leftovers = [p for p in result.store.rglob("*") if p.name in ("data", "scratch.txt")]
    assert leftovers == []

    retried_yaml = tmp_path / "retried.yaml"
    compiler.Compiler().compile(kfp_failures.retried_write, str(retried_yaml))
    log = logs.new()
    result = run(retried_yaml, tmp_path, log, params={"counter": str(tmp_path / "counter")})
    assert result.succeeded, result.error
    (seen,) = notes(log)
    assert seen == {"content": "complete on attempt 2", "files": ["data", "executor_output.json"]}


def test_retries_rerun_a_failing_step_until_it_succeeds(tmp_path, logs):
    log = logs.new()
    result = run(FAILURES, tmp_path, log, pipeline="retried", params={"counter": str(tmp_path / "counter")})
    assert result.succeeded, result.error
    assert notes(log) == [{"attempt": 1, "what": "flaky"}, {"attempt": 2, "what": "flaky"},
                          {"attempts": 2, "what": "consume"}]
    assert statuses(result) == {"flaky": "done", "consume": "done"}
    assert "transient failure on attempt 1" in Path(result.task("flaky").log_path).read_text()


@pytest.mark.parametrize("how", ["always-exit", "always-signal"])
def test_a_step_that_ends_its_worker_process_fails_alone(how, tmp_path, logs):
    """A crash that takes the worker process down (here os._exit and SIGKILL) fails that step with
    the exit code or signal and its log; the other steps, even those started later, still run."""
    log = logs.new()
    result = run(FAILURES, tmp_path, log, pipeline="worker_dies", backend="process", max_workers=2,
                 params={"counter": str(tmp_path / "counter"), "how": how, "seconds": 0.3})
    assert result.status == "FAILED"
    died = result.task("die")
    expected = "was killed by SIGKILL" if how.endswith("signal") else "exited with code 3"
    assert f"the worker process running this step {expected}" in died.error, died.error
    assert "attempt 2 starting" in Path(died.log_path).read_text()  # retried once, on a new worker
    assert statuses(result)["independent"] == statuses(result)["later"] == "done"
    assert statuses(result)["after-die"] != "done"
    assert [n["attempt"] for n in notes(log) if n["what"] == "die"] == [1, 2]


def test_a_retry_after_the_worker_process_died_can_succeed(tmp_path, logs):
    log = logs.new()
    result = run(FAILURES, tmp_path, log, pipeline="worker_dies", backend="process", max_workers=1,
                 params={"counter": str(tmp_path / "counter"), "how": "once-signal", "seconds": 0.0})
    assert result.succeeded, result.error
    assert {"what": "after-die", "attempts": 2} in notes(log)


def test_failed_loop_iteration_fails_the_run(tmp_path, logs):
    log = logs.new()
    result = run(FAILURES, tmp_path, log, pipeline="loop_fails")
    assert result.status == "FAILED"
    assert statuses(result)["maybe[1]"] == "failed" and "x=2 fails" in result.task("maybe[1]").error
    assert statuses(result)["maybe[0]"] == statuses(result)["maybe[2]"] == "done"
    assert statuses(result)["gather"] != "done"
    assert not [v for v in notes(log) if v["what"] == "gather"]
    assert result.warnings == []


def test_collect_failed_iterations_gives_the_consumer_the_successful_ones(tmp_path, logs):
    log = logs.new()
    result = run(FAILURES, tmp_path, log, pipeline="loop_fails", collect_failed_iterations=True,
                 params={"xs": [1, 2, 3, 4]})
    assert result.succeeded, result.error
    (gathered,) = [v for v in notes(log) if v["what"] == "gather"]
    assert gathered == {"types": ["int"], "values": [100, 300, 400], "what": "gather"}
    assert statuses(result)["maybe[1]"] == "failed"
    assert len(result.warnings) == 1 and re.search(r"\[1\]", result.warnings[0]), result.warnings
    assert "for-loop" in result.warnings[0]


def test_cli_collect_failed_iterations_exits_0_with_a_warning(tmp_path, logs):
    log = logs.new()
    done = cli(FAILURES, "--pipeline", "loop_fails", "--run", "--collect-failed-iterations", "-q",
               "--store", tmp_path / "store", "--param", f"log={log}")
    assert done.returncode == 0, done.stderr
    assert re.search(r"warning: .*\[1\] failed", done.stdout)
    assert [v["values"] for v in notes(log) if v["what"] == "gather"] == [[100, 300]]


# ---------------------------------------------------------------------------
# Cache


def test_unchanged_rerun_is_all_cached_and_a_changed_parameter_reruns_only_what_it_affects(tmp_path, logs):
    log = logs.new()

    def diamond(**params):
        result = run(TIMING, tmp_path, log, pipeline="diamond", params=params, backend="thread")
        assert result.succeeded, result.error
        return statuses(result)

    assert diamond() == dict.fromkeys(["base", "combine", "side", "finish"], "done")
    assert diamond() == dict.fromkeys(["base", "combine", "side", "finish"], "cached")
    assert diamond(b=3) == {"base": "cached", "combine": "done", "side": "done", "finish": "done"}
    assert diamond(a=5, b=3) == {"base": "done", "combine": "done", "side": "cached", "finish": "done"}
    assert diamond(a=5, b=3) == dict.fromkeys(["base", "combine", "side", "finish"], "cached")
    counted = {}
    for note in notes(log):
        counted[note["what"]] = counted.get(note["what"], 0) + 1
    assert counted == {"base": 2, "combine": 3, "side": 2, "finish": 3}
    (finish,) = [v for v in notes(log) if v["what"] == "finish" and v["total"] == 13]
    assert finish["other"] == 300


def test_no_cache_reruns_everything(tmp_path, logs, capsys):
    log = logs.new()
    assert run(TIMING, tmp_path, log, pipeline="diamond").succeeded
    result = run(TIMING, tmp_path, log, pipeline="diamond", cache=False)
    assert set(statuses(result).values()) == {"done"}
    code = main([str(TIMING), "--pipeline", "diamond", "--run", "--no-cache", "-q", "--store",
                 str(tmp_path / "store"), "--param", f"log={log}"])
    assert code == 0
    summary = capsys.readouterr().out
    assert re.search(r"^base\s+done\s+[\d.]+\s+no$", summary, re.M), summary
    assert len(notes(log)) == 3 * 4


def test_cli_rerun_reports_every_step_cached(tmp_path, logs, capsys):
    log = logs.new()
    argv = [str(TIMING), "--pipeline", "diamond", "--run", "-q", "--store", str(tmp_path / "store"),
            "--param", f"log={log}"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 0
    summary = capsys.readouterr().out
    for step in ("base", "combine", "side", "finish"):
        assert re.search(rf"^{step}\s+cached\s+-\s+yes$", summary, re.M), summary
    assert "(4 cached)" in summary


def _notebook_rerun_rows(tmp_path, capsys) -> dict[str, tuple[str, str]]:
    """Run numpy_stats twice from the command line; the second run's summary: step -> (status, cached)."""
    notebook = EXAMPLE_NOTEBOOKS / "numpy_stats.ipynb"
    argv = [str(notebook), "--run", "-q", "--store", str(tmp_path / "store")]
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    summary = capsys.readouterr().out
    return {m.group(1): (m.group(2), m.group(3))
            for m in re.finditer(r"^(\S+)\s+(\S+)\s+\S+\s+(yes|no)$", summary, re.M) if m.group(1) != "step"}


def test_notebook_rerun_honours_cache_disabled_tags(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = _notebook_rerun_rows(tmp_path, capsys)
    assert rows["generate_data"] == ("cached", "yes")
    assert rows["compute_stats"] == rows["score"] == ("done", "no")  # tagged cache:disabled


def test_step_logging_metrics_is_a_cache_hit_on_rerun(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _notebook_rerun_rows(tmp_path, capsys)["clean_data"] == ("cached", "yes")


def test_step_with_caching_off_always_reruns(tmp_path, logs):
    log = logs.new()
    run(TIMING, tmp_path, log, pipeline="partly_cached")
    result = run(TIMING, tmp_path, log, pipeline="partly_cached")
    assert statuses(result) == {"base": "cached", "stamp": "done"}
    assert [v["what"] for v in notes(log)] == ["base", "stamp", "stamp"]


def test_cache_hit_needs_the_cached_outputs_to_still_exist(tmp_path, logs):
    import shutil

    log = logs.new()
    first = run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain")
    assert first.succeeded, first.error
    assert set(statuses(run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain")).values()) == {"cached"}
    shutil.rmtree(first.store)  # the run that holds the cached artifacts is gone
    again = run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain")
    assert again.succeeded, again.error
    # make-rows and summarize run again (their outputs went with the run); publish's input has the same
    # content as before and it has no outputs of its own, so it stays a cache hit
    assert statuses(again) == {"make-rows": "done", "summarize": "done", "publish": "cached"}
    assert json.loads((task_folder(again, "make-rows") / "data" / "value.json").read_text())["rows"] == [0, 1, 2, 3]


def test_cached_task_log_path_is_empty_or_exists(tmp_path, logs):
    log = logs.new()
    run(TIMING, tmp_path, log, pipeline="diamond")
    result = run(TIMING, tmp_path, log, pipeline="diamond")
    assert set(statuses(result).values()) == {"cached"}
    for report in result.tasks:
        assert report.log_path == "" or Path(report.log_path).is_file(), report


def test_cache_records_are_written_atomically(tmp_path, logs):
    run(TIMING, tmp_path, logs.new(), pipeline="diamond")
    records = list((tmp_path / "store" / "cache").iterdir())
    assert len(records) == 4 and all(p.suffix == ".json" for p in records)
    for record in records:
        json.loads(record.read_text())


def _slow(hash_path):
    def slow(path):
        import time

        time.sleep(0.2)
        return hash_path(path)

    return slow


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_outputs_hashed_while_dependents_start_keep_cache_and_lineage_the_same(backend, tmp_path, logs,
                                                                               monkeypatch):
    """Every output hashed in the background (as large ones are): the same statuses, cache hits and
    lineage hashes as when hashed in line, including a rerun whose producer runs again with the same
    output (its consumer, which could have started before the hash was known, is still a hit)."""
    import shutil

    from kale_like.backends.local import run as local_run

    monkeypatch.setattr(local_run, "BACKGROUND_HASH_BYTES", 0)
    monkeypatch.setattr(local_run, "hash_path", _slow(local_run.hash_path))  # dependents start before it ends
    log = logs.new()
    first = run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain", backend=backend)
    assert first.succeeded, first.error
    assert statuses(first) == dict.fromkeys(["make-rows", "summarize", "publish"], "done")
    assert len(list((tmp_path / "store" / "cache").glob("*.json"))) == 3  # records in place when run returns
    with sqlite3.connect(tmp_path / "store" / "lineage.sqlite") as db:
        hashes = dict(db.execute("SELECT uri, content_hash FROM artifacts WHERE run_id = ?", (first.run_id,)))
    assert hashes and all(h == local_run.hash_path(Path(uri)) for uri, h in hashes.items()), hashes
    assert set(statuses(run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain", backend=backend)).values()) == {
        "cached"}
    shutil.rmtree(first.store)
    again = run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain", backend=backend)
    assert statuses(again) == {"make-rows": "done", "summarize": "done", "publish": "cached"}
    assert sorted(n["what"] for n in notes(log)) == ["publish", "summarize", "summarize"]


def test_store_with_records_older_than_the_cache_index_keeps_its_hits(tmp_path, logs, monkeypatch):
    """A store whose records have no index entries (written before the index existed): tasks wait
    for their inputs' hashes and look the record up, as before, and the store is not marked indexed."""
    import shutil

    from kale_like.backends.local import run as local_run

    monkeypatch.setattr(local_run, "BACKGROUND_HASH_BYTES", 0)
    monkeypatch.setattr(local_run, "hash_path", _slow(local_run.hash_path))
    log = logs.new()
    first = run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain", backend="thread")
    assert first.succeeded, first.error
    (tmp_path / "store" / "cache-index").unlink()
    shutil.rmtree(first.store)  # make-rows runs again; what follows must still find its records
    again = run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain", backend="thread")
    assert statuses(again) == {"make-rows": "done", "summarize": "done", "publish": "cached"}
    assert not (tmp_path / "store" / "cache-index").exists()


def test_process_pool_is_no_wider_than_a_chain_needs_and_gone_after_the_run(tmp_path, logs):
    import multiprocessing

    from kale_like.backends.local.ir import PipelineIR
    from kale_like.backends.local.run import most_at_once
    from kale_like.backends.local.workers import wait_for_closing_pools

    diamond = PipelineIR.from_text(kale_like.compile(TIMING, "diamond"))
    assert most_at_once(diamond) == 2  # base, then side and combine together, then finish
    chain = PipelineIR.from_text(kale_like.compile(ARTIFACTS, "artifact_chain"))
    assert most_at_once(chain) == 1
    assert most_at_once(PipelineIR.from_text(kale_like.compile(ARTIFACTS, "collected_artifacts"))) is None  # a loop
    result = run(ARTIFACTS, tmp_path, logs.new(), pipeline="artifact_chain", backend="process", max_workers=4)
    assert result.succeeded, result.error
    wait_for_closing_pools()  # the workers exit after the run returns
    assert multiprocessing.active_children() == []


def test_content_hash_of_a_folder_is_its_files_in_path_order_names_and_bytes(tmp_path):
    """The definition cache keys and lineage rely on (a change of it costs every store its hits):
    BLAKE3, named in the hash; files by path, component by component; symlinked folders not
    entered; big files (hashed memory-mapped, on every core) hashed alike."""
    import blake3

    from kale_like.backends.local.run import hash_path

    folder = tmp_path / "value"
    files = {"a/b": b"1", "a-b/x": b"2", "a.txt": b"3", "z/big.npy": bytes(range(256)) * 16384}
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / "link").symlink_to(folder / "a")
    expected = blake3.blake3()
    for name in ("a/b", "a-b/x", "a.txt", "z/big.npy"):  # "a/b" before "a-b/x": by component
        expected.update(name.encode() + blake3.blake3(files[name]).digest())
    assert hash_path(folder) == f"blake3:{expected.hexdigest()}"
    big = blake3.blake3(blake3.blake3(files["z/big.npy"]).digest()).hexdigest()
    assert hash_path(folder / "z" / "big.npy") == f"blake3:{big}"
    (folder / "z" / "big.npy").write_bytes(files["z/big.npy"][:-1] + b"\0")  # one byte at the end
    assert hash_path(folder / "z" / "big.npy") != f"blake3:{big}"


def test_hash_with_a_size_limit_is_the_content_hash_or_none(tmp_path):
    """How a run tells the outputs it hashes at once from those it hashes while dependents start."""
    from kale_like.backends.local.content import hash_below, hash_path

    folder = tmp_path / "value"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"x" * 100)
    (folder / "sub" / "b.bin").write_bytes(b"y" * 300)
    assert hash_below(str(folder), 401) == hash_path(folder)
    assert hash_below(str(folder), 400) is None  # the two files reach the limit together
    assert hash_below(str(folder / "a.txt"), 101) == hash_path(folder / "a.txt")
    assert hash_below(str(folder / "a.txt"), 100) is None
    assert hash_below(str(tmp_path / "absent"), 1) == hash_path(tmp_path / "absent")


# ---------------------------------------------------------------------------
# Lineage


def _lineage(capsys, *argv) -> tuple[int, str, str]:
    code = main(["lineage", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_lineage_of_a_run_and_of_its_artifacts(tmp_path, logs, capsys):
    store = tmp_path / "store"
    log = logs.new()
    result = run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain", params={"n": 3})
    assert result.succeeded, result.error
    data = task_folder(result, "make-rows") / "data"
    summary_artifacts = [p for p in task_folder(result, "summarize").iterdir() if p.is_dir()]
    assert len(summary_artifacts) == 1
    summary = summary_artifacts[0]

    code, out, _ = _lineage(capsys, result.run_id, "--store", store)
    assert code == 0
    assert f"run {result.run_id}: pipeline 'artifact-chain', SUCCEEDED" in out
    assert str(ARTIFACTS) in out and '"n": 3' in out
    for step in ("make_rows", "summarize", "publish"):  # the user's step names, where their code is
        assert re.search(rf"^\s+{step}\s+done\s+[0-9.]+ s  function {step} \(", out, re.M), out
    assert f"-> data: {data}" in out

    code, out, _ = _lineage(capsys, data / "value.json", "--store", store)  # a file inside the artifact
    assert code == 0
    assert f"artifact {data}" in out
    assert f"produced by: run {result.run_id} ('artifact-chain'), step make_rows as output 'data'" in out
    assert 'parameters: {"n": 3}' in out
    produced = out.split("produced from it:", 1)[1]
    assert str(summary) in produced and "summarize" in produced

    code, out, _ = _lineage(capsys, summary, "--store", store)
    assert code == 0
    assert "step summarize" in out
    inputs = out.split("inputs:", 1)[1].split("produced from it:", 1)[0]
    assert f"{data} (from root/make-rows in run {result.run_id})" in inputs
    assert '"scale": 0.5' in out

    digest = re.search(r"content hash: blake3:([0-9a-f]{64})", out).group(1)
    for prefix in (digest[:12], f"blake3:{digest[:12]}"):
        code, by_hash, _ = _lineage(capsys, prefix, "--store", store)
        assert code == 0 and f"artifact {summary}" in by_hash


def test_lineage_of_a_store_from_before_hashes_named_their_algorithm(tmp_path, logs, capsys):
    """Older stores held bare SHA-256 hex: shown as sha256:..., found by either form."""
    import sqlite3

    result = run(ARTIFACTS, tmp_path, logs.new(), pipeline="artifact_chain", params={"n": 2})
    assert result.succeeded, result.error
    data = task_folder(result, "make-rows") / "data"
    legacy = "ab12" * 16
    with sqlite3.connect(tmp_path / "store" / "lineage.sqlite") as db:
        db.execute("UPDATE artifacts SET content_hash = ? WHERE uri = ?", (legacy, str(data)))
    for query in (legacy[:10], f"sha256:{legacy[:10]}"):
        code, out, _ = _lineage(capsys, query, "--store", tmp_path / "store")
        assert code == 0 and f"artifact {data}" in out and f"content hash: sha256:{legacy}" in out, out


def test_deleting_an_old_runs_folder_makes_its_steps_run_again(tmp_path, logs):
    """Freeing disk space is safe: a cache record whose outputs are gone is not used."""
    log = logs.new()
    first = run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain", params={"n": 3})
    assert first.succeeded, first.error
    import shutil

    shutil.rmtree(first.store)  # runs/<run id>
    again = run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain", params={"n": 3})
    assert again.succeeded, again.error
    # the steps whose outputs were deleted run again; publish has no output to lose
    assert statuses(again) == {"make-rows": "done", "summarize": "done", "publish": "cached"}
    assert sorted(n["what"] for n in notes(log)) == ["publish", "summarize", "summarize"]
    third = run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain", params={"n": 3})
    assert set(statuses(third).values()) == {"cached"}, statuses(third)


def test_lineage_looks_a_tasks_events_up_by_index(tmp_path, logs):
    """`lineage RUN_ID` looks up each task's events: without an index that is a scan of every event
    of every run in the store per task (28 s for a 3,000-task run among 20, benchmarks/bench_lineage.py)."""
    import sqlite3

    assert run(ARTIFACTS, tmp_path, logs.new(), pipeline="artifact_chain", params={"n": 2}).succeeded
    with sqlite3.connect(tmp_path / "store" / "lineage.sqlite") as db:
        plan = db.execute("EXPLAIN QUERY PLAN SELECT * FROM events WHERE run_id = ? AND task_path = ? "
                          "AND direction = 'out'", ("r", "root/x")).fetchall()
    assert any("USING INDEX events_task" in row[-1] for row in plan), plan


def test_lineage_of_a_cached_rerun_points_at_the_first_runs_artifact(tmp_path, logs, capsys):
    log = logs.new()
    first = run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain")
    second = run(ARTIFACTS, tmp_path, log, pipeline="artifact_chain")
    assert set(statuses(second).values()) == {"cached"}
    code, out, _ = _lineage(capsys, second.run_id, "--store", tmp_path / "store")
    assert code == 0 and re.search(r"^\s+make_rows\s+cached", out, re.M), out
    assert f"-> data: {task_folder(first, 'make-rows') / 'data'}" in out


@pytest.mark.parametrize("target", ["no-such-run", "/nowhere/at/all", "deadbeefdeadbeef"])
def test_lineage_of_an_unknown_target_exits_2(target, tmp_path, logs, capsys):
    run(ARTIFACTS, tmp_path, logs.new(), pipeline="artifact_chain")
    code, out, err = _lineage(capsys, target, "--store", tmp_path / "store")
    assert code == 2 and out == ""
    assert f"no run or artifact matches '{target}'" in err


def test_lineage_without_a_store_exits_2(tmp_path, capsys):
    code, _, err = _lineage(capsys, "anything", "--store", tmp_path / "empty")
    assert code == 2 and "no lineage database" in err


def test_secret_values_never_reach_the_lineage_database(tmp_path, logs, monkeypatch):
    secret = "tok-7f3a9c-Sup3rS3cret"
    monkeypatch.setenv("TOKEN", secret)
    log = logs.new()
    result = run(ARTIFACTS, tmp_path, log, pipeline="uses_secret")
    assert result.succeeded, result.error
    assert [v["token_length"] for v in notes(log) if v["what"] == "call"] == [len(secret)]  # the step had it
    stored = b"".join(p.read_bytes() for p in (tmp_path / "store").glob("lineage.sqlite*"))
    assert stored and secret.encode() not in stored
    with sqlite3.connect(tmp_path / "store" / "lineage.sqlite") as connection:
        parameters = [row[0] for row in connection.execute("SELECT parameters FROM tasks")]
    assert any("example.invalid" in p for p in parameters)


# ---------------------------------------------------------------------------
# Parameters

PARAMS = LOCAL / "params.py"


def test_cli_params_are_typed_by_their_declaration(tmp_path, logs, capsys):
    log = logs.new()
    code = main([str(PARAMS), "--run", "-q", "--store", str(tmp_path / "store"), "--param", f"log={log}",
                 "--param", "n=10", "--param", "x=2", "--param", "flag=false", "--param", "name=123",
                 "--param", 'cfg={"z": "q"}'])
    assert code == 0, capsys.readouterr().err
    (seen,) = notes(log)
    assert seen["n"] == ["int", 10] and seen["x"] == ["float", 2.0] and seen["flag"] == ["bool", False]
    assert seen["name"] == ["str", "123"] and seen["cfg"] == ["dict", {"z": "q"}]


def test_yaml_params_are_typed_by_their_declaration(tmp_path, logs, capsys, compiled):
    log = logs.new()
    code = main([str(compiled(PARAMS, "typed_params")), "--run", "-q", "--store", str(tmp_path / "store"),
                 "--param", f"log={log}", "--param", "n=10", "--param", "x=2", "--param", "flag=false",
                 "--param", "name=123", "--param", "xs=[3, 4.5]", "--param", 'cfg={"z": [1]}'])
    assert code == 0, capsys.readouterr().err
    (seen,) = notes(log)
    assert seen["n"] == ["int", 10] and seen["x"] == ["float", 2.0] and seen["flag"] == ["bool", False]
    assert seen["name"] == ["str", "123"] and seen["xs"] == ["list", [3, 4.5]] and seen["cfg"] == ["dict", {"z": [1]}]


def test_cli_list_param_on_a_python_file(tmp_path, logs, capsys):
    log = logs.new()
    code = main([str(PARAMS), "--run", "-q", "--store", str(tmp_path / "store"), "--param", f"log={log}",
                 "--param", "xs=[3, 4]"])
    assert code == 0, capsys.readouterr().err
    assert notes(log)[0]["xs"] == ["list", [3, 4]]


def test_ints_inside_list_and_dict_defaults_stay_ints(tmp_path, logs):
    expected = oracle(PARAMS, "typed_params", logs.new())
    log = logs.new()
    result = run(PARAMS, tmp_path, log)
    assert result.succeeded, result.error
    assert lines(log) == expected


@pytest.mark.parametrize("source_kind", ["py", "yaml"])
@pytest.mark.parametrize(("param", "message"), [("n=abc", "not a valid int"), ("n=2.5", "int"),
                                                ("flag=maybe", "bool"), ("nope=1", "no")])
def test_bad_or_unknown_param_exits_2(source_kind, param, message, tmp_path, capsys, compiled):
    source = PARAMS if source_kind == "py" else compiled(PARAMS, "typed_params")
    code = main([str(source), "--run", "-q", "--store", str(tmp_path / "store"), "--param", param])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and param.split("=")[0] in err
    assert not (tmp_path / "store" / "runs").exists() or not any((tmp_path / "store" / "runs").iterdir())


def test_api_params_are_checked_and_typed(tmp_path, logs):
    log = logs.new()
    result = run(PARAMS, tmp_path, log, params={"n": "7", "x": 3, "flag": "no"})
    assert result.succeeded, result.error
    (seen,) = notes(log)
    assert seen["n"] == ["int", 7] and seen["x"] == ["float", 3.0] and seen["flag"] == ["bool", False]
    with pytest.raises(KaleLikeError, match="no parameter 'nope'"):
        run(PARAMS, tmp_path, params={"nope": 1})
    with pytest.raises(KaleLikeError, match="'n'"):
        run(PARAMS, tmp_path, params={"n": True})


def test_process_backend_on_a_platform_without_fork_is_refused_with_a_hint(tmp_path, monkeypatch, capsys):
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with pytest.raises(KaleLikeError, match="cannot fork") as refused:
        run(EXAMPLE_PIPELINES / "kale_loop_item.py", tmp_path, backend="process")
    assert "--backend thread" in refused.value.render()
    assert not (tmp_path / "store" / "runs").exists()  # refused before anything was written
    assert run(EXAMPLE_PIPELINES / "kale_loop_item.py", tmp_path, backend="thread").succeeded


def test_runs_without_a_home_folder_keep_no_compiled_runtime(tmp_path, monkeypatch):
    """No $HOME and no user entry (some containers): the run works, nothing is kept."""
    from pathlib import Path as RealPath

    for name in ("KALE_LIKE_CACHE_DIR", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)

    def no_home(cls):
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(RealPath, "home", classmethod(no_home))
    for name in [name for name in sys.modules if name.startswith("kale_like_runtime_")]:
        monkeypatch.delitem(sys.modules, name)  # as in a new process: the runtime is compiled again
    from kale_like.user_cache import cache_folder

    assert cache_folder() is None
    result = run(EXAMPLE_PIPELINES / "kale_loop_item.py", tmp_path)
    assert result.succeeded, result.error
