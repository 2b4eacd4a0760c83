"""Contract tests of kale_like's calls to a Kubeflow Pipelines server (`--kfp --host ...`).

The CLI runs for real (in-process through `main`, and a few times as `python -m kale_like`) against
`tests/kfp_api_server.py`: a fake of the KFP v2beta1 REST API on 127.0.0.1 that serves the endpoints
the kfp 2.17 client calls, checks every JSON body against its `kfp_server_api` model and records
every request. Nothing of kale_like is mocked: the tests check what goes over the wire (paths, query
parameters, multipart upload, bodies, the Authorization header) and what the user sees (exit code,
stdout, a one-line `error: <host>: ...` plus a hint, within a bounded time).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import REPO, fixture_notebook
from kfp_api_server import (
    API,
    ClosedPort,
    FakeKfp,
    PlainHttpServer,
    ResettingServer,
    SilentServer,
    check_model,
    to_model,
)

from kale_like.surfaces.cli import main

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

NOTEBOOK = fixture_notebook("prev_diamond")
NAME = "contract-demo"
SECRET = "kfp-test-token-7f3a9c1e5b"

HEALTHZ = f"GET {API}/healthz"
LIST_PIPELINES = f"GET {API}/pipelines"
UPLOAD = f"POST {API}/pipelines/upload"
UPLOAD_VERSION = f"POST {API}/pipelines/upload_version"
LIST_VERSIONS = f"GET {API}/pipelines/{{id}}/versions"
LIST_EXPERIMENTS = f"GET {API}/experiments"
CREATE_EXPERIMENT = f"POST {API}/experiments"
CREATE_RUN = f"POST {API}/runs"
GET_RUN = f"GET {API}/runs/{{id}}"
CREATE_RECURRING = f"POST {API}/recurringruns"


def bound(timeout: float) -> float:
    """How long a failing deploy may take with `--timeout timeout` (a request, one retry, slack)."""
    return 2 * timeout + 3


# --- harness ----------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def hermetic(monkeypatch, tmp_path):
    """No token, endpoint or proxy from the environment; kfp's context file inside tmp_path."""
    for variable in ("KFP_TOKEN", "MY_KFP_TOKEN", "KF_PIPELINES_ENDPOINT", "KF_PIPELINES_UI_ENDPOINT",
                     "KF_PIPELINES_IAP_OAUTH2_CLIENT_ID", "KF_PIPELINES_APP_OAUTH2_CLIENT_ID",
                     "KF_PIPELINES_APP_OAUTH2_CLIENT_SECRET", "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME",
                     "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME", "http_proxy", "HTTP_PROXY", "https_proxy",
                     "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    from kfp.client.client import Client

    monkeypatch.setattr(Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp" / "context.json"))


@dataclass
class Deployed:
    code: int | None
    out: str
    err: str
    elapsed: float
    yaml: Path
    dsl: Path


@pytest.fixture
def deploy(tmp_path, capsys):
    """`deploy(host, *args, guard=, on_hang=, source=) -> Deployed`: the CLI compiling NOTEBOOK (or `source`)
    and deploying it.

    It runs in a thread so that a hang fails the test after `guard` seconds instead of blocking it
    (`on_hang` then releases the server so the thread can end).
    """
    counter = itertools.count()

    def run(host: str, *args, guard: float = 60.0, on_hang=None, source: Path = NOTEBOOK) -> Deployed:
        folder = tmp_path / f"deploy{next(counter)}"
        folder.mkdir()
        yaml = folder / "pipeline.yaml"
        argv = [str(source), "--kfp", "-o", str(yaml), "-q", "--pipeline-name", NAME, "--host", host,
                *map(str, args)]
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault("code", main(argv)), daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(guard)
        elapsed = time.monotonic() - started
        hung = thread.is_alive()
        if hung and on_hang:
            on_hang()
            thread.join(15)
        captured = capsys.readouterr()
        if hung:
            pytest.fail(f"the deploy was still running after {guard:.1f} s\n"
                        f"stdout:\n{captured.out}\nstderr:\n{captured.err}")
        return Deployed(result.get("code"), captured.out, captured.err, elapsed, yaml,
                        folder / "pipeline_kfp.py")

    return run


@pytest.fixture
def kfp():
    with FakeKfp() as server:
        yield server


def only(server: FakeKfp, route: str):
    calls = server.calls(route)
    assert len(calls) == 1, f"expected one {route}, got {server.routes()}"
    return calls[0]


def assert_contract(server: FakeKfp):
    assert server.violations == [], server.violations


def run_body(server: FakeKfp, index: int = -1):
    """The last (or index-th) created run, as the kfp_server_api model the server reads."""
    body = server.calls(CREATE_RUN)[index].json
    assert check_model(body, "V2beta1Run") == []
    return to_model(body, "V2beta1Run")


def assert_one_error(result: Deployed, host: str, code: int):
    """Exit `code`, and stderr is exactly `error: <host>: ...` and a hint, no traceback."""
    lines = result.err.splitlines()
    assert result.code == code, result.err
    assert len(lines) == 2, result.err
    assert lines[0].startswith(f"error: {host}: "), result.err
    assert lines[1].startswith("  hint: ") and len(lines[1]) > len("  hint: "), result.err
    assert "Traceback" not in result.err and "internal error" not in result.err


def next_runs(stdout: str) -> list[datetime]:
    """The fire times printed after 'next runs:' (UTC)."""
    match = re.search(r"next runs: (.+)$", stdout, re.MULTILINE)
    assert match, stdout
    times = [datetime.strptime(text, "%Y-%m-%d %H:%M UTC").replace(tzinfo=timezone.utc)
             for text in match.group(1).split(", ")]
    assert len(times) == 3, stdout
    return times


# --- upload and run -----------------------------------------------------------------------------------


def test_first_upload_creates_the_pipeline_and_runs_its_first_version(kfp, deploy):
    result = deploy(kfp.url, "--experiment", "exp", "--run-name", "first-run")

    assert result.code == 0, result.err
    assert_contract(kfp)
    assert kfp.routes() == [HEALTHZ, HEALTHZ, LIST_PIPELINES, UPLOAD, LIST_VERSIONS, LIST_EXPERIMENTS,
                            CREATE_EXPERIMENT, CREATE_RUN]

    lookup = only(kfp, LIST_PIPELINES)
    assert '"stringValue": "contract-demo"' in lookup.query["filter"]
    upload = only(kfp, UPLOAD)
    assert upload.headers["content-type"].startswith("multipart/form-data")
    assert upload.query["name"] == NAME and "namespace" not in upload.query
    filename, content = upload.files["uploadfile"]
    assert filename == "pipeline.yaml"
    assert content == result.yaml.read_bytes()  # the compiled file, byte for byte
    assert "pipelineInfo" in content.decode()

    (pipeline,) = kfp.pipelines.values()
    (version,) = kfp.versions[pipeline["pipeline_id"]]
    (experiment,) = kfp.experiments.values()
    assert experiment["display_name"] == "exp"
    run = run_body(kfp)
    assert run.experiment_id == experiment["experiment_id"]
    assert run.display_name == "first-run"
    assert run.pipeline_version_reference.pipeline_id == pipeline["pipeline_id"]
    assert run.pipeline_version_reference.pipeline_version_id == version["pipeline_version_id"]
    assert run.pipeline_spec is None  # the run references the uploaded version, not an inline copy

    assert f"(pipeline {pipeline['pipeline_id']}, version {version['pipeline_version_id']})" in result.out
    (run_id,) = kfp.runs
    assert f"{kfp.url}/#/runs/details/{run_id}" in result.out
    assert all("authorization" not in r.headers for r in kfp.requests)  # no token given, none sent


def test_a_second_upload_adds_a_version_and_the_run_uses_exactly_that_version(kfp, deploy):
    first = deploy(kfp.url, "--experiment", "exp")
    assert first.code == 0, first.err
    (pipeline_id,) = kfp.pipelines
    kfp.add_experiment("other")

    second = deploy(kfp.url, "--experiment", "exp", "--version-name", "v2-release")

    assert second.code == 0, second.err
    assert_contract(kfp)
    assert len(kfp.calls(UPLOAD)) == 1  # the pipeline is not uploaded again
    upload = only(kfp, UPLOAD_VERSION)
    assert upload.query["pipelineid"] == pipeline_id
    assert upload.query["name"] == "v2-release"
    assert upload.files["uploadfile"][1] == second.yaml.read_bytes()
    versions = kfp.versions[pipeline_id]
    assert [v["display_name"] for v in versions] == [NAME, "v2-release"]
    reference = run_body(kfp).pipeline_version_reference
    assert (reference.pipeline_id, reference.pipeline_version_id) == (pipeline_id, versions[1]["pipeline_version_id"])
    assert len(kfp.experiments) == 2 and len(kfp.calls(CREATE_EXPERIMENT)) == 1  # 'exp' reused
    assert "version v2-release" in second.out


def test_a_run_uses_the_new_version_even_when_older_ones_exist(kfp, deploy):
    pipeline = kfp.add_pipeline(NAME, versions=3)
    result = deploy(kfp.url)
    assert result.code == 0, result.err
    assert_contract(kfp)
    new = kfp.versions[pipeline["pipeline_id"]][-1]
    assert only(kfp, UPLOAD_VERSION).query["name"] == new["display_name"]
    assert new["display_name"].startswith(f"{NAME}-")  # default version name: pipeline name and time
    reference = run_body(kfp).pipeline_version_reference
    assert reference.pipeline_version_id == new["pipeline_version_id"]
    assert run_body(kfp).experiment_id == next(iter(kfp.experiments))  # the 'Default' experiment
    assert next(iter(kfp.experiments.values()))["display_name"] == "Default"


def test_version_name_is_honoured_on_the_first_upload(kfp, deploy):
    result = deploy(kfp.url, "--version-name", "v1")
    assert result.code == 0, result.err
    (pipeline_id,) = kfp.pipelines
    named = [v for v in kfp.versions[pipeline_id] if v["display_name"] == "v1"]
    assert named, [v["display_name"] for v in kfp.versions[pipeline_id]]
    assert run_body(kfp).pipeline_version_reference.pipeline_version_id == named[0]["pipeline_version_id"]


# --- experiments and namespaces (multi-user KFP) -----------------------------------------------------


def test_the_experiment_is_reused_by_name_in_the_namespace(deploy):
    with FakeKfp(multi_user=True) as kfp:
        kfp.add_experiment("exp", namespace="team-b")
        mine = kfp.add_experiment("exp", namespace="team-a")
        result = deploy(kfp.url, "--namespace", "team-a", "--experiment", "exp")

    assert result.code == 0, result.err
    assert_contract(kfp)
    lookup = only(kfp, LIST_EXPERIMENTS)
    assert lookup.query["namespace"] == "team-a"
    assert '"stringValue": "exp"' in lookup.query["filter"]
    assert kfp.calls(CREATE_EXPERIMENT) == []
    assert run_body(kfp).experiment_id == mine["experiment_id"]
    assert only(kfp, UPLOAD).query["namespace"] == "team-a"
    assert HEALTHZ in kfp.routes()


def test_the_experiment_is_created_in_the_namespace_when_missing(deploy):
    with FakeKfp(multi_user=True) as kfp:
        other = kfp.add_experiment("exp", namespace="team-b")
        result = deploy(kfp.url, "--namespace", "team-a", "--experiment", "exp")

    assert result.code == 0, result.err
    assert_contract(kfp)
    create = only(kfp, CREATE_EXPERIMENT)
    assert check_model(create.json, "V2beta1Experiment") == []
    assert create.json == {"display_name": "exp", "namespace": "team-a"}
    created = next(e for e in kfp.experiments.values() if e["namespace"] == "team-a")
    assert run_body(kfp).experiment_id == created["experiment_id"] != other["experiment_id"]
    (pipeline,) = kfp.pipelines.values()
    assert pipeline["namespace"] == "team-a"


def test_a_second_deploy_to_a_namespace_adds_a_version(deploy):
    with FakeKfp(multi_user=True) as kfp:
        first = deploy(kfp.url, "--namespace", "team-a")
        assert first.code == 0, first.err
        second = deploy(kfp.url, "--namespace", "team-a")

    assert second.code == 0, second.err
    assert kfp.calls(LIST_PIPELINES)[-1].query.get("namespace") == "team-a"
    (pipeline_id,) = kfp.pipelines
    assert len(kfp.versions[pipeline_id]) == 2
    assert run_body(kfp).pipeline_version_reference.pipeline_version_id == \
        kfp.versions[pipeline_id][1]["pipeline_version_id"]


# --- --wait -----------------------------------------------------------------------------------------------


def test_wait_follows_the_run_until_it_succeeds(kfp, deploy):
    kfp.run_states = ["RUNNING", "SUCCEEDED"]
    result = deploy(kfp.url, "--wait", "--wait-timeout", "60")

    assert result.code == 0, result.err
    assert_contract(kfp)
    (run_id,) = kfp.runs
    polls = kfp.calls(GET_RUN)
    assert len(polls) == 2 and all(r.path == f"{API}/runs/{run_id}" for r in polls)
    assert f"run {run_id} finished: SUCCEEDED" in result.out


@pytest.mark.parametrize("state", ["FAILED", "CANCELED"])
def test_wait_exits_1_when_the_run_does_not_succeed(kfp, deploy, state):
    kfp.run_states = [state]
    result = deploy(kfp.url, "--wait")

    assert result.code == 1, result.err
    (run_id,) = kfp.runs
    assert len(kfp.calls(GET_RUN)) == 1
    assert f"run {run_id} finished: {state}" in result.out
    assert "Traceback" not in result.err


# --- service account (KFP sets it per run) -----------------------------------------------------------------


def with_service_account(tmp_path: Path, account) -> Path:
    """NOTEBOOK with `kubeflow_notebook.service_account` in its metadata."""
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.metadata.setdefault("kubeflow_notebook", {})["service_account"] = account
    path = tmp_path / "with_account.ipynb"
    nbformat.write(notebook, path)
    return path


def test_runs_and_schedules_carry_no_service_account_unless_one_is_given(kfp, deploy):
    assert deploy(kfp.url).code == 0
    assert deploy(kfp.url, "--schedule", "0 2 * * *").code == 0
    assert_contract(kfp)
    assert run_body(kfp).service_account is None
    assert to_model(only(kfp, CREATE_RECURRING).json, "V2beta1RecurringRun").service_account is None


def test_the_notebook_metadata_service_account_is_sent_with_the_run_and_the_schedule(kfp, deploy, tmp_path):
    source = with_service_account(tmp_path, "pipeline-runner")
    run = deploy(kfp.url, source=source)
    scheduled = deploy(kfp.url, "--schedule", "0 2 * * *", source=source)

    assert run.code == 0, run.err
    assert scheduled.code == 0, scheduled.err
    assert_contract(kfp)
    assert run_body(kfp).service_account == "pipeline-runner"
    job = only(kfp, CREATE_RECURRING).json
    assert check_model(job, "V2beta1RecurringRun") == []
    assert to_model(job, "V2beta1RecurringRun").service_account == "pipeline-runner"
    assert "pipeline-runner" not in run.yaml.read_text()  # KFP IR has no place for it: it is a run setting


def test_the_command_line_service_account_overrides_the_pipelines(kfp, deploy, tmp_path):
    source = with_service_account(tmp_path, "pipeline-runner")
    result = deploy(kfp.url, "--service-account", "team-a-editor", source=source)
    scheduled = deploy(kfp.url, "--schedule", "0 2 * * *", "--service-account", "team-a-editor", source=source)

    assert result.code == 0 and scheduled.code == 0, result.err + scheduled.err
    assert run_body(kfp).service_account == "team-a-editor"
    assert only(kfp, CREATE_RECURRING).json["service_account"] == "team-a-editor"


def test_a_pipeline_functions_service_account_is_sent_with_the_run(kfp, deploy, tmp_path):
    source = tmp_path / "with_account.py"
    source.write_text(
        "from kale_like import pipeline, step\n\n\n@step\ndef hello():\n    print('hello')\n\n\n"
        "@pipeline(name='with-account', service_account='pipeline-runner')\ndef with_account():\n    hello()\n",
        encoding="utf-8")
    result = deploy(kfp.url, source=source)

    assert result.code == 0, result.err
    assert_contract(kfp)
    assert run_body(kfp).service_account == "pipeline-runner"


@pytest.mark.parametrize("where", ["metadata", "flag"])
def test_an_invalid_service_account_fails_before_any_request(kfp, deploy, tmp_path, where):
    if where == "metadata":
        result = deploy(kfp.url, source=with_service_account(tmp_path, "Pipeline Runner"))
    else:
        result = deploy(kfp.url, "--service-account", "runner/admin")

    assert result.code == 2
    assert "is not a Kubernetes service account name" in result.err
    assert ("notebook metadata 'service_account'" if where == "metadata" else "--service-account") in result.err
    assert kfp.requests == []


# --- credentials -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["--token-env", "--token-file", "KFP_TOKEN"])
def test_the_token_is_sent_as_a_bearer_header_and_never_shown(deploy, monkeypatch, tmp_path, source):
    if source == "--token-env":
        monkeypatch.setenv("MY_KFP_TOKEN", SECRET)
        args = ["--token-env", "MY_KFP_TOKEN"]
    elif source == "--token-file":
        token_file = tmp_path / "token"
        token_file.write_text(SECRET + "\n", encoding="utf-8")
        args = ["--token-file", token_file]
    else:  # the default --token-env
        monkeypatch.setenv("KFP_TOKEN", SECRET)
        args = []
    with FakeKfp(token=SECRET) as kfp:
        result = deploy(kfp.url, *args, "--schedule", "0 2 * * 0")

    assert result.code == 0, result.err
    assert_contract(kfp)
    assert len(kfp.requests) >= 6
    assert all(r.headers.get("authorization") == f"Bearer {SECRET}" for r in kfp.requests), \
        [(r.route, r.headers.get("authorization")) for r in kfp.requests]
    assert SECRET not in result.out and SECRET not in result.err
    assert SECRET not in result.yaml.read_text(encoding="utf-8")
    assert SECRET not in result.dsl.read_text(encoding="utf-8")
    assert SECRET.encode() not in only(kfp, UPLOAD).files["uploadfile"][1]


def test_a_rejected_token_is_a_user_error_without_the_token_in_the_message(deploy, monkeypatch):
    monkeypatch.setenv("MY_KFP_TOKEN", SECRET)
    with FakeKfp(token="the-right-one") as kfp:
        result = deploy(kfp.url, "--token-env", "MY_KFP_TOKEN", "--timeout", 2)

    assert_one_error(result, kfp.url, 2)
    assert "HTTP 401" in result.err and "token" in result.err
    assert SECRET not in result.err and SECRET not in result.out
    assert kfp.routes() == [HEALTHZ]  # stopped at the health check
    assert result.elapsed < bound(2)


def test_a_token_required_past_the_health_check_is_a_user_error(deploy, caplog):
    with FakeKfp(token=SECRET, auth_healthz=False) as kfp:  # the gateway lets /healthz through
        result = deploy(kfp.url, "--timeout", 2)

    assert_one_error(result, kfp.url, 2)
    assert "HTTP 401" in result.err and "Unauthenticated" in result.err and "check the token" in result.err
    assert kfp.calls(UPLOAD) == [] and kfp.calls(CREATE_RUN) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- schedules --------------------------------------------------------------------------------------------


def test_a_five_field_schedule_creates_a_recurring_run_of_the_uploaded_version(kfp, deploy):
    before = datetime.now(timezone.utc)
    result = deploy(kfp.url, "--experiment", "nightly-exp", "--schedule", "0 2 * * 0", "--schedule-name", "weekly",
                    "--max-concurrency", 3, "--no-catchup")

    assert result.code == 0, result.err
    assert_contract(kfp)
    assert kfp.calls(CREATE_RUN) == []  # a schedule, not a run
    body = only(kfp, CREATE_RECURRING).json
    assert check_model(body, "V2beta1RecurringRun") == []
    job = to_model(body, "V2beta1RecurringRun")
    (pipeline,) = kfp.pipelines.values()
    (version,) = kfp.versions[pipeline["pipeline_id"]]
    (experiment,) = kfp.experiments.values()
    assert job.experiment_id == experiment["experiment_id"]
    assert experiment["display_name"] == "nightly-exp"
    assert job.pipeline_version_reference.pipeline_id == pipeline["pipeline_id"]
    assert job.pipeline_version_reference.pipeline_version_id == version["pipeline_version_id"]
    assert job.trigger.cron_schedule.cron == "0 0 2 * * 0"
    assert job.trigger.periodic_schedule is None
    assert int(job.max_concurrency) == 3
    assert job.no_catchup is True
    assert job.mode == "ENABLE"
    assert job.display_name == "weekly"

    (job_id,) = kfp.recurring_runs
    assert f"'weekly' ({job_id}, enabled) with cron '0 0 2 * * 0'" in result.out
    times = next_runs(result.out)
    assert all(t.weekday() == 6 and (t.hour, t.minute) == (2, 0) for t in times), times  # Sundays 02:00 UTC
    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(days=7)] * 2
    assert before - timedelta(minutes=1) < times[0] <= before + timedelta(days=7)


def test_a_disabled_schedule_with_catchup(kfp, deploy):
    result = deploy(kfp.url, "--schedule", "*/30 * * * *", "--disabled")

    assert result.code == 0, result.err
    assert_contract(kfp)
    job = to_model(only(kfp, CREATE_RECURRING).json, "V2beta1RecurringRun")
    assert job.mode == "DISABLE"
    assert not job.no_catchup  # catch-up (backfill) stays on unless --no-catchup
    assert int(job.max_concurrency) == 1
    assert job.trigger.cron_schedule.cron == "0 */30 * * * *"
    assert job.display_name == f"{NAME}-schedule"
    assert "disabled" in result.out
    times = next_runs(result.out)
    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(minutes=30)] * 2


@pytest.mark.parametrize("cron, weekdays, hour, step", [
    ("0 */15 * * * *", range(7), None, timedelta(minutes=15)),
    ("0 0 9 ? * 1-5", range(5), 9, None),  # robfig's '?' and Mon-Fri
])
def test_a_six_field_schedule_is_sent_as_written(kfp, deploy, cron, weekdays, hour, step):
    result = deploy(kfp.url, "--schedule", cron)

    assert result.code == 0, result.err
    assert_contract(kfp)
    assert to_model(only(kfp, CREATE_RECURRING).json, "V2beta1RecurringRun").trigger.cron_schedule.cron == cron
    times = next_runs(result.out)
    assert all(t.weekday() in weekdays for t in times), times
    if hour is not None:
        assert all((t.hour, t.minute) == (hour, 0) for t in times), times
    if step is not None:
        assert [b - a for a, b in itertools.pairwise(times)] == [step] * 2


@pytest.mark.parametrize("cron", [
    "61 2 * * 0",           # minute out of range
    "0 25 * * *",           # hour out of range
    "0 2 * *",              # 4 fields
    "0 0 2 * * 0 2026",     # 7 fields
    "x 0 2 * * 0",          # bad seconds
    "70 0 2 * * 0",         # seconds out of range
    "every sunday",
])
def test_an_invalid_schedule_fails_before_any_request(kfp, deploy, cron):
    result = deploy(kfp.url, "--schedule", cron)

    assert result.code == 2
    assert result.err.startswith(f"error: schedule '{cron}'"), result.err
    assert "\n  hint: " in result.err and "Traceback" not in result.err
    assert kfp.requests == []  # the server saw nothing
    assert not result.yaml.exists()  # checked before compiling, too


def test_a_day_of_week_kfp_cannot_parse_is_rejected_or_normalised(kfp, deploy):
    result = deploy(kfp.url, "--schedule", "0 2 * * 7")
    if result.code == 2:
        assert kfp.requests == []
    else:
        assert result.code == 0, result.err
        assert only(kfp, CREATE_RECURRING).json["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * 0"


# --- hosts that are not a working KFP -------------------------------------------------------------------


@pytest.mark.parametrize("kind, code, says", [
    ("closed port", 2, "cannot reach the KFP API"),
    ("resets connections", 2, "cannot reach the KFP API"),
    ("plain 404", 2, "HTTP 404"),
    ("never answers", 2, "timed out"),
    ("bad token (401)", 2, "HTTP 401"),
    pytest.param("plain 500", 1, "HTTP 500"),
])
def test_a_host_that_is_not_a_working_kfp_fails_fast_with_one_line(deploy, caplog, monkeypatch, kind, code, says):
    servers = {"closed port": ClosedPort, "resets connections": ResettingServer, "never answers": SilentServer,
               "plain 404": lambda: PlainHttpServer(404), "plain 500": lambda: PlainHttpServer(500),
               "bad token (401)": lambda: FakeKfp(token="the-right-one")}
    if kind == "bad token (401)":
        monkeypatch.setenv("KFP_TOKEN", "a-wrong-token")
    timeout = 1
    with servers[kind]() as server:
        result = deploy(server.url, "--timeout", timeout, guard=bound(timeout) + 5, on_hang=server.stop)

    assert_one_error(result, server.url, code)
    assert says in result.err.splitlines()[0]
    assert result.elapsed < bound(timeout), f"{result.elapsed:.1f} s"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # nothing logged to stderr either
    assert result.out.startswith("wrote ") and len(result.out.splitlines()) == 1


def test_a_server_error_after_the_upload_exits_1_and_names_the_step(kfp, deploy):
    kfp.fail(CREATE_RUN, 500, "database is locked")
    result = deploy(kfp.url, "--timeout", 2)

    assert_one_error(result, kfp.url, 1)
    assert "starting the run failed: HTTP 500 database is locked" in result.err
    assert len(kfp.calls(UPLOAD)) == 1 and len(kfp.calls(CREATE_RUN)) == 1  # a POST is not retried
    assert result.elapsed < bound(2)


def test_a_missing_experiment_permission_is_a_user_error(kfp, deploy):
    kfp.fail(CREATE_EXPERIMENT, 403, "PermissionDenied: user cannot create experiments in namespace")
    result = deploy(kfp.url, "--experiment", "exp")

    assert_one_error(result, kfp.url, 2)
    assert "getting experiment 'exp' failed: HTTP 403 PermissionDenied" in result.err
    assert kfp.calls(CREATE_RUN) == []


@pytest.mark.parametrize("route, after, args", [
    pytest.param(HEALTHZ, 1, [], id="kfp.Client's own health check"),
    pytest.param(CREATE_RUN, 0, ["--namespace", "team-a"], id="create run"),
])
def test_a_server_that_stops_answering_after_the_health_check_times_out(deploy, route, after, args):
    timeout = 0.5
    with FakeKfp() as kfp:
        kfp.fail(route, hang=120, after=after)
        result = deploy(kfp.url, "--timeout", timeout, *args, guard=bound(timeout), on_hang=kfp.release)

    assert_one_error(result, kfp.url, 1)
    assert "timed out" in result.err


# --- the real entry point -------------------------------------------------------------------------------


def _module(tmp_path: Path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KFP_", "KF_PIPELINES")) and "proxy" not in k.lower()}
    env.update(HOME=str(tmp_path), NO_PROXY="127.0.0.1,localhost", TMPDIR=str(tmp_path))
    command = [sys.executable, "-m", "kale_like", str(NOTEBOOK), "--kfp", "-o", str(tmp_path / "p.yaml"), "-q",
               *map(str, args)]
    return subprocess.run(command, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=90)


def test_python_m_kale_like_gives_up_on_a_silent_host_quickly_and_quietly(tmp_path):
    """Alone, the kfp client would wait forever for a host that accepts and never answers."""
    timeout = 2
    with SilentServer() as server:
        run = _module(tmp_path, "--host", server.url, "--timeout", timeout)
        finished = time.monotonic()

    assert run.returncode == 2, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"error: {server.url}: ") and lines[1].startswith("  hint: "), \
        run.stderr
    assert "Traceback" not in run.stderr
    assert server.first_contact is not None
    assert finished - server.first_contact < timeout + 3  # from the first connection to the exit
