"""The Jupyter server extension's REST API (kale_like.surfaces.server), driven through a real
jupyter_server by pytest-jupyter: authentication, XSRF, root confinement, every handler, and the
analyzer's messages reaching the panel exactly as the command line prints them.

pytest-jupyter's fixtures are imported into this module only (its autouse event-loop fixtures then
apply here and nowhere else); tests are plain functions that drive requests on that loop.
"""

from __future__ import annotations

import base64
import contextlib
import re
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("jupyter_server")
pytest.importorskip("pytest_jupyter")

from pytest_jupyter.jupyter_core import *  # noqa: E402,F403 - fixtures, for this module only
from pytest_jupyter.jupyter_server import *  # noqa: E402,F403
from tornado.httpclient import HTTPClientError  # noqa: E402

from kale_like.surfaces.server.runs import RunManager  # noqa: E402
from run_view_cells import RUN_VIEW_CELLS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "notebooks"


# ------------------------------------------------------------------------------------- fixtures


def notebook(cells: list[tuple[str, list[str]]], metadata: dict | None = None) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata.update(metadata or {})
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nbformat.writes(nb)


TINY = notebook([
    ("n = 3", ["pipeline-parameters"]),
    ("x = n * 2\nprint('made', x)", ["step:make"]),
    ("y = x + 1\nprint('result', y)", ["step:use", "prev:make"]),
], {"kubeflow_notebook": {"pipeline_name": "tiny", "experiment_name": "tests"}})

SLOW = notebook([
    ("import time\nx = 1", ["step:first"]),
    ("time.sleep(120)\ny = x", ["step:sleepy"]),
])

BAD_TAG = notebook([
    ("x = 1", ["step:load"]),
    ("y = x", ["stpe:train"]),
])

UNDEFINED = notebook([
    ("x = 1", ["step:load"]),
    ("y = missing_name + x", ["step:train"]),
])


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"kale_like": True}}}


@pytest.fixture
def root(jp_root_dir):
    (jp_root_dir / "tiny.ipynb").write_text(TINY, encoding="utf-8")
    (jp_root_dir / "slow.ipynb").write_text(SLOW, encoding="utf-8")
    (jp_root_dir / "bad_tag.ipynb").write_text(BAD_TAG, encoding="utf-8")
    (jp_root_dir / "undefined.ipynb").write_text(UNDEFINED, encoding="utf-8")
    (jp_root_dir / "sub").mkdir()
    shutil.copy(EXAMPLES / "parallel_branches.ipynb", jp_root_dir / "sub" / "parallel_branches.ipynb")
    (jp_root_dir / "notes.txt").write_text("not a notebook", encoding="utf-8")
    return jp_root_dir


class Api:
    """Synchronous requests against the test server; answers (status, JSON) without raising."""

    def __init__(self, fetch, loop):
        self.fetch, self.loop = fetch, loop

    def __call__(self, method: str, route: str, body=None, params=None, headers=None):
        kwargs = {"method": method, "params": params, "headers": headers, "raise_error": False}
        if body is not None or method == "POST":
            kwargs["body"] = json.dumps(body if body is not None else {})
        response = self.loop.run_until_complete(self.fetch("kale-like", *route.split("/"), **kwargs))
        try:
            data = json.loads(response.body or b"{}")
        except ValueError:
            data = {"raw": response.body.decode(errors="replace")}
        return response.code, data

    def get(self, route, **kw):
        return self("GET", route, **kw)

    def post(self, route, body=None, **kw):
        return self("POST", route, body, **kw)


@pytest.fixture
def api(jp_fetch, jp_asyncio_loop, jp_serverapp, root):
    yield Api(jp_fetch, jp_asyncio_loop)
    jp_asyncio_loop.run_until_complete(jp_serverapp.web_app.settings["kale_like_runs"].shutdown())


def wait_for_run(api: Api, run_id: str, timeout: float = 120.0, until=("succeeded", "failed", "stopped")) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        code, status = api.get(f"runs/{run_id}")
        assert code == 200, status
        if status["state"] in until:
            return status
        assert time.monotonic() < deadline, f"run still {status['state']}: {status}"
        api.loop.run_until_complete(_sleep(0.3))


async def _sleep(seconds):
    import asyncio

    await asyncio.sleep(seconds)


def cli_message(cwd: Path, relative: str) -> str:
    """What `python -m kale_like RELATIVE` prints on stderr, run from `cwd`."""
    from kale_like.surfaces.cli import main

    err = io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main([relative])
    finally:
        os.chdir(previous)
    assert code == 2
    return err.getvalue().strip()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------ authentication

ROUTES = [
    ("GET", "info"), ("POST", "analyze"), ("POST", "section-tags"), ("POST", "compile"), ("GET", "runs"),
    ("POST", "runs"),
    ("GET", "runs/abc123"), ("GET", "runs/abc123/logs"), ("POST", "runs/abc123/stop"), ("GET", "kfp/status"),
    ("POST", "upload"), ("POST", "schedule/preview"), ("POST", "schedule"),
]


@pytest.mark.parametrize("method,route", ROUTES)
def test_every_route_refuses_requests_without_a_token(api, method, route):
    code, _ = api(method, route, body={"path": "tiny.ipynb"} if method == "POST" else None,
                  headers={"Authorization": ""})
    assert code == 403


def test_every_handler_method_is_authenticated_as_jupyter_server_checks_it(jp_serverapp):
    """The check jupyter_server runs with allow_unauthenticated_access=False (the official template's
    check_auth): no method of ours is open."""
    from kale_like.surfaces.server.handlers import ROUTES

    missing = [m for route, handler in ROUTES for m in jp_serverapp.web_app._check_handler_auth(route, handler)]
    assert missing == []


@pytest.mark.parametrize("jp_server_config", [{"ServerApp": {"jpserver_extensions": {"kale_like": True},
                                                              "allow_unauthenticated_access": False}}])
def test_with_unauthenticated_access_off(api):
    assert api.get("info")[0] == 200
    assert api.get("info", headers={"Authorization": ""})[0] == 403
    assert api.post("analyze", {"path": "tiny.ipynb"}, headers={"Authorization": ""})[0] == 403


def test_a_wrong_token_is_refused(api):
    code, _ = api.get("info", headers={"Authorization": "token not-the-token"})
    assert code == 403


def test_info_with_the_token(api):
    code, data = api.get("info")
    assert code == 200
    assert data["ok"] and data["version"]


def login_cookie(api: Api, jp_serverapp) -> str:
    """Authenticate once with the token in the URL: the server answers with its login cookie."""
    token = jp_serverapp.identity_provider.token
    response = api.loop.run_until_complete(
        api.fetch("kale-like", "info", params={"token": token}, headers={"Authorization": ""}))
    cookies = response.headers.get_list("Set-Cookie")
    login = [c.split(";", 1)[0] for c in cookies if c.startswith("username-")]
    assert login, cookies
    return login[0]


def test_post_with_the_login_cookie_but_no_xsrf_token_is_refused(api, jp_serverapp):
    cookie = login_cookie(api, jp_serverapp)
    code, _ = api.get("info", headers={"Authorization": "", "Cookie": cookie})
    assert code == 200  # the cookie alone authenticates a GET
    code, data = api.post("analyze", {"path": "tiny.ipynb"}, headers={"Authorization": "", "Cookie": cookie})
    assert code == 403
    assert "xsrf" in json.dumps(data).lower()


def test_post_with_the_login_cookie_and_the_xsrf_token_is_accepted(api, jp_serverapp):
    cookie = login_cookie(api, jp_serverapp)
    xsrf = "2|abcdef12|0123456789abcdef0123456789abcdef|1700000000"
    headers = {"Authorization": "", "Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf}
    code, data = api.post("analyze", {"path": "tiny.ipynb"}, headers=headers)
    assert code == 200, data
    assert [s["name"] for s in data["graph"]["steps"]] == ["make", "use"]


# ----------------------------------------------------------------------------------- the root

@pytest.mark.parametrize("path", ["../outside.ipynb", "sub/../../outside.ipynb", "/etc/passwd", "~/x.ipynb"])
def test_paths_outside_the_root_are_refused(api, path):
    for route in ("analyze", "compile", "runs", "upload", "schedule"):
        code, data = api.post(route, {"path": path, "host": "http://127.0.0.1:1", "cron": "0 2 * * 0"})
        assert code == 403, (route, data)
        assert "root" in data["message"] or ".." in data["message"]


def test_a_symlink_out_of_the_root_is_refused(api, root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret.ipynb"
    outside.write_text(TINY, encoding="utf-8")
    (root / "link.ipynb").symlink_to(outside)
    code, data = api.post("analyze", {"path": "link.ipynb"})
    assert code == 403
    assert "outside" in data["message"]


def test_hidden_files_are_refused_as_jupyter_does(api, root):
    (root / ".hidden").mkdir()
    (root / ".hidden" / "tiny.ipynb").write_text(TINY, encoding="utf-8")
    code, data = api.post("analyze", {"path": ".hidden/tiny.ipynb"})
    assert code == 403 and "hidden" in data["message"]


def test_max_workers_must_be_a_positive_integer(api):
    for bad in ("4", 0, -1, True, 1.5):
        assert api.post("runs", {"path": "tiny.ipynb", "max_workers": bad})[0] == 400, bad


def test_missing_files_and_other_kinds_of_files(api):
    assert api.post("analyze", {"path": "nope.ipynb"})[0] == 404
    code, data = api.post("analyze", {"path": "notes.txt"})
    assert code == 400 and ".ipynb" in data["message"]
    assert api.post("analyze", {})[0] == 400
    code, data = api("POST", "analyze", body=None, headers={"Content-Type": "application/json"})
    assert code == 400


def test_a_body_that_is_not_json_is_a_400(api):
    response = api.loop.run_until_complete(
        api.fetch("kale-like", "analyze", method="POST", body="{not json", raise_error=False))
    assert response.code == 400


# ------------------------------------------------------------------------------------ analyze

def test_analyze_gives_steps_edges_with_variables_and_parameters(api):
    code, data = api.post("analyze", {"path": "sub/parallel_branches.ipynb"})
    assert code == 200, data
    graph = data["graph"]
    names = [s["name"] for s in graph["steps"]]
    assert names == ["load_data", "train_logreg", "train_forest", "compare"]
    edges = {(e["source"], e["target"]): e["names"] for e in graph["edges"]}
    assert ("load_data", "train_logreg") in edges and "X_train" in edges[("load_data", "train_logreg")]
    assert {p["name"]: p["type"] for p in graph["parameters"]}["n_estimators"] == "int"
    steps = {s["name"]: s for s in graph["steps"]}
    shown = {p["name"]: p["default_text"] for p in data["graph"]["parameters"]}
    assert (shown["n_estimators"], shown["C"]) == ("60", "0.5")
    assert steps["load_data"]["cells"] == [5]
    assert steps["train_forest"]["cells"] == [10, 11]  # an untagged cell continues the step
    assert "code" not in steps["load_data"]
    assert graph["settings"]["name"] == "parallel-branches"
    assert graph["source"] == "sub/parallel_branches.ipynb"


def test_analyze_names_the_exit_handler_and_its_cells(api, root):
    (root / "exit.ipynb").write_text(notebook([
        ("x = 1", ["step:make"]),
        ("print(pipeline_status['state'])", ["exit-handler"]),
        ("print('done')", []),
    ]), encoding="utf-8")
    code, data = api.post("analyze", {"path": "exit.ipynb"})
    assert code == 200, data
    assert [s["name"] for s in data["graph"]["steps"]] == ["make"]
    assert data["graph"]["exit_step"] == {"name": "exit_handler", "cells": [1, 2]}
    code, data = api.post("analyze", {"path": "tiny.ipynb"})
    assert data["graph"]["exit_step"] is None


def test_a_float_default_is_shown_as_a_float(api, root):
    (root / "floats.ipynb").write_text(notebook([
        ("ratio = 1.0\nweights = [1.0, 2]\nname = 'a'", ["pipeline-parameters"]),
        ("x = ratio * sum(weights)\nprint(name)", ["step:make"]),
    ]), encoding="utf-8")
    code, data = api.post("analyze", {"path": "floats.ipynb"})
    assert code == 200, data
    shown = {p["name"]: p["default_text"] for p in data["graph"]["parameters"]}
    assert shown == {"ratio": "1.0", "weights": "[1.0, 2]", "name": "a"}


def test_analyze_unsaved_content_sent_by_the_panel(api, root):
    content = json.loads((root / "tiny.ipynb").read_text())
    content["cells"][2]["metadata"]["tags"] = ["step:use_renamed", "prev:make"]
    code, data = api.post("analyze", {"path": "tiny.ipynb", "notebook": content})
    assert code == 200, data
    assert [s["name"] for s in data["graph"]["steps"]] == ["make", "use_renamed"]
    assert data["graph"]["source"] == "tiny.ipynb"


def test_a_bad_tag_is_a_problem_with_the_cli_message(api, root):
    """A notebook with problems is the analysis' normal answer (200, `ok` false), not a failed request:
    the browser logs no error for it on each edit."""
    code, data = api.post("analyze", {"path": "bad_tag.ipynb"})
    assert (code, data["ok"]) == (200, False)
    assert data["message"] == cli_message(root, "bad_tag.ipynb")
    (problem,) = data["errors"]
    assert problem["location"]["cell_index"] == 1
    assert "stpe:train" in problem["message"]
    assert problem["rendered"].startswith("error: bad_tag.ipynb:cell 2")


def test_an_undefined_name_names_cell_line_and_column(api, root):
    code, data = api.post("analyze", {"path": "undefined.ipynb"})
    assert (code, data["ok"]) == (200, False)
    assert data["message"] == cli_message(root, "undefined.ipynb")
    location = data["errors"][0]["location"]
    assert (location["cell_index"], location["line"], location["column"]) == (1, 1, 5)


def test_errors_in_unsaved_content_name_the_notebook_not_a_temporary_file(api, root):
    content = json.loads((root / "tiny.ipynb").read_text())
    content["cells"][1]["metadata"]["tags"] = ["step:Bad-Name"]
    code, data = api.post("analyze", {"path": "tiny.ipynb", "notebook": content})
    assert (code, data["ok"]) == (200, False)
    assert "tiny.ipynb:cell 2" in data["message"]
    assert "kale_like_panel_" not in json.dumps(data)
    assert data["errors"][0]["location"]["path"] == "tiny.ipynb"


def test_a_notebook_with_a_bad_tag_still_shows_its_graph_and_parameters(api, root):
    """The graph without the tags the problems are on: the panel shows it (stale) beside the problems,
    with the parameters, where it showed nothing."""
    content = json.loads((root / "tiny.ipynb").read_text())
    content["cells"][2]["metadata"]["tags"] = ["step:use", "prev:mkae", "cache:false"]
    code, data = api.post("analyze", {"path": "tiny.ipynb", "notebook": content})
    assert (code, data["ok"]) == (200, False)
    assert ["did you mean 'cache:disabled'?" in e["hint"] for e in data["errors"]] == [True]
    assert [s["name"] for s in data["graph"]["steps"]] == ["make", "use"]
    assert [p["name"] for p in data["graph"]["parameters"]] == ["n"]
    assert data["graph"]["source"] == "tiny.ipynb" and "kale_like_panel_" not in json.dumps(data)
    _, undefined = api.post("analyze", {"path": "undefined.ipynb"})  # a problem in code: no graph to show
    assert undefined["graph"] is None


def test_content_that_is_not_a_notebook(api):
    code, data = api.post("analyze", {"path": "tiny.ipynb", "notebook": {"nothing": 1}})
    assert code == 400
    assert "not a Jupyter notebook" in data["message"]
    assert api.post("analyze", {"path": "tiny.ipynb", "notebook": [1, 2]})[0] == 400


def sectioned() -> dict:
    """A notebook without tags: markdown headings above imports, helpers and the sections' code."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import json"),
        nbformat.v4.new_markdown_cell("# 1. Load the data"),
        nbformat.v4.new_code_cell("def double(v):\n    return v * 2"),
        nbformat.v4.new_code_cell("data = [1, 2, 3]"),
        nbformat.v4.new_markdown_cell("## 2. Clean it"),
        nbformat.v4.new_code_cell(""),
        nbformat.v4.new_code_cell("clean = [double(v) for v in data]\nprint(json.dumps(clean))"),
    ]
    return json.loads(nbformat.writes(nb))


def test_section_tags_are_those_the_analyzer_makes_of_the_headings(api, root):
    """What "Make steps from the headings" writes: notebook_sections.section_tags, per cell index and id;
    analysed with those tags written, the notebook has the steps the untagged one got."""
    from kale_like.frontends.notebook_reader import read_notebook
    from kale_like.frontends.notebook_sections import section_tags

    content = sectioned()
    (root / "sections.ipynb").write_text(json.dumps(content), encoding="utf-8")
    code, saved = api.post("section-tags", {"path": "sections.ipynb"})
    assert code == 200, saved
    expected = section_tags(read_notebook(root / "sections.ipynb"))
    assert {c["index"]: tuple(c["tags"]) for c in saved["cells"]} == expected
    assert saved["cells"] == [
        {"index": 0, "id": content["cells"][0]["id"], "tags": ["imports"]},
        {"index": 2, "id": content["cells"][2]["id"], "tags": ["functions"]},
        {"index": 3, "id": content["cells"][3]["id"], "tags": ["step:load_the_data"]},
        {"index": 6, "id": content["cells"][6]["id"], "tags": ["step:clean_it"]},
    ]
    assert saved["steps"] == ["load_the_data", "clean_it"] and saved["path"] == "sections.ipynb"
    # unsaved content is read as analyze reads it; one step for the whole notebook on request
    content["cells"][4]["source"] = "Not a heading any more"
    code, data = api.post("section-tags", {"path": "sections.ipynb", "notebook": content, "one_step": True})
    assert code == 200, data
    assert data["steps"] == ["sections"] and data["one_step"] is True
    assert {c["index"] for c in data["cells"] if c["tags"] == ["step:sections"]} == {3, 6}
    code, data = api.post("section-tags", {"path": "sections.ipynb", "notebook": content})
    assert data["steps"] == ["load_the_data"]
    # written into the cells, they are an ordinary tagged notebook with the same graph
    _, untagged = api.post("analyze", {"path": "sections.ipynb"})
    for cell in saved["cells"]:
        content["cells"][cell["index"]]["metadata"]["tags"] = cell["tags"]
    content["cells"][4]["source"] = "## 2. Clean it"
    code, tagged = api.post("analyze", {"path": "sections.ipynb", "notebook": content})
    assert code == 200, tagged
    assert tagged["graph"]["steps"] == untagged["graph"]["steps"]
    assert tagged["graph"]["edges"] == untagged["graph"]["edges"]
    assert not any("no step tags" in w for w in tagged["warnings"])
    assert any("no step tags" in w for w in untagged["warnings"])


def test_section_tags_refuse_bad_requests_with_a_message(api, root):
    content = sectioned()
    (root / "sections.ipynb").write_text(json.dumps(content), encoding="utf-8")
    for body, status, words in [
        ({"path": "sections.ipynb", "one_step": "yes"}, 400, "'one_step' must be true or false"),
        ({"path": "sections.ipynb", "notebook": [1]}, 400, "'notebook' must be"),
        ({"path": "sections.ipynb", "notebook": {"nothing": 1}}, 400, "not a Jupyter notebook"),
        ({"path": "notes.txt"}, 400, ".ipynb"),
        ({"path": "nope.ipynb"}, 404, "does not exist"),
        ({}, 400, ""),
        ({"path": "tiny.ipynb"}, 409, "tiny.ipynb: cell 1 is already tagged (pipeline-parameters)"),
    ]:
        code, data = api.post("section-tags", body)
        assert code == status and words in data["message"], (body, code, data)
    (root / "flow.py").write_text("x = 1\n", encoding="utf-8")
    code, data = api.post("section-tags", {"path": "flow.py"})
    assert code == 400 and "is not a notebook" in data["message"], data
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from kale_like import pipeline, step\n\n@step\ndef make() -> int:\n"
                                          "    return 1\n\n@pipeline\ndef flow():\n    make()")]
    code, data = api.post("section-tags", {"path": "sections.ipynb", "notebook": json.loads(nbformat.writes(nb))})
    assert code == 409 and "@pipeline functions" in data["message"], data


def test_slow_work_does_not_block_the_server(api, monkeypatch):
    from kale_like.surfaces.server import service

    def slow_analyze(*args):
        time.sleep(2.0)
        return {"ok": True}

    monkeypatch.setattr(service, "analyze", slow_analyze)
    import asyncio

    async def both():
        slow = asyncio.ensure_future(api.fetch("kale-like", "analyze", method="POST",
                                               body=json.dumps({"path": "tiny.ipynb"})))
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        quick = await api.fetch("kale-like", "info")
        answered = time.perf_counter() - started
        assert not slow.done()
        await slow
        return quick.code, answered

    code, answered = api.loop.run_until_complete(both())
    assert code == 200 and answered < 1.0


# ------------------------------------------------------------------------------------ compile

def test_compile_writes_yaml_and_dsl_next_to_the_notebook(api, root):
    code, data = api.post("compile", {"path": "sub/parallel_branches.ipynb"})
    assert code == 200, data
    assert data["yaml_path"] == "sub/parallel_branches.yaml"
    assert data["dsl_path"] == "sub/parallel_branches_kfp.py"
    text = (root / "sub" / "parallel_branches.yaml").read_text()
    assert text.startswith(data["preview"][:200])
    assert "pipelineInfo" in text and data["steps"] == 4
    assert (root / "sub" / "parallel_branches_kfp.py").exists()


def test_compile_into_an_output_folder_and_with_a_default_image(api, root):
    code, data = api.post("compile", {"path": "tiny.ipynb", "output_folder": "pipelines", "image": "python:3.12-slim"})
    assert code == 200, data
    assert data["yaml_path"] == "pipelines/tiny.yaml"
    assert "python:3.12-slim" in (root / "pipelines" / "tiny.yaml").read_text()


def test_compile_refuses_an_output_folder_outside_the_root(api):
    code, data = api.post("compile", {"path": "tiny.ipynb", "output_folder": "../../elsewhere"})
    assert code == 403


def test_compile_of_a_bad_notebook_is_a_400_and_writes_nothing(api, root):
    code, data = api.post("compile", {"path": "bad_tag.ipynb"})
    assert code == 400
    assert data["message"] == cli_message(root, "bad_tag.ipynb")
    assert not (root / "bad_tag.yaml").exists()


# --------------------------------------------------------------------------------- local runs

def test_run_locally_reports_every_step_and_their_logs(api):
    code, started = api.post("runs", {"path": "tiny.ipynb", "params": {"n": "5"}})
    assert code == 202, started
    status = wait_for_run(api, started["id"])
    assert status["state"] == "succeeded", status
    tasks = {t["label"]: t for t in status["tasks"]}
    assert set(tasks) == {"make", "use"}
    assert all(t["status"] == "done" for t in tasks.values())
    code, log = api.get(f"runs/{started['id']}/logs", params={"task": "use"})
    assert code == 200
    assert "result 11" in log["text"]  # n=5 -> x=10 -> y=11
    code, runs = api.get("runs")
    assert started["id"] in [r["id"] for r in runs["runs"]]
    assert api.get(f"runs/{started['id']}/logs", params={"task": "nope"})[0] == 404


def test_a_restarted_server_lists_the_runs_its_run_store_kept(api, root, jp_serverapp):
    """The runs of a notebook outlive the server: a new one (a new RunManager, with nothing in memory)
    lists them from the notebook's run store with their final state, rows and metrics, their logs and
    outputs; a record that cannot be read is left out."""
    code, started = api.post("runs", {"path": "tiny.ipynb", "params": {"n": "5"}})
    status = wait_for_run(api, started["id"])
    assert status["state"] == "succeeded"
    records = root / ".kale_like" / "panel_runs"
    assert (records / f"{started['id']}.json").is_file()
    (records / "0badc0ffee00.json").write_text("{ not JSON", encoding="utf-8")
    damaged = json.loads((records / f"{started['id']}.json").read_text(encoding="utf-8"))
    (records / "0badc0ffee01.json").write_text(json.dumps({**damaged, "id": "0badc0ffee01", "tasks": [1]}))
    settings = jp_serverapp.web_app.settings
    first = settings["kale_like_runs"]
    settings["kale_like_runs"] = RunManager()  # the restarted server's
    try:
        code, listed = api.get("runs", params={"source": "tiny.ipynb"})
        assert code == 200 and [run["id"] for run in listed["runs"]] == [started["id"]]
        (again,) = listed["runs"]
        for key in ("state", "rows", "params", "metrics", "pipeline", "folder", "kale_run_id", "started"):
            assert again[key] == status[key], key
        assert again["finished"] >= again["started"]
        assert "result 11" in api.get(f"runs/{started['id']}/logs", params={"task": "use"})[1]["text"]
        code, data = api.get(f"runs/{started['id']}/outputs", params={"task": "make"})
        assert code == 200 and [(o["name"], o["text"]) for o in data["outputs"]] == [("x", "10")]
        assert api.get("runs", params={"source": "slow.ipynb"})[1]["runs"] == []  # another notebook's
    finally:
        settings["kale_like_runs"] = first


FLOW = notebook(RUN_VIEW_CELLS)


def test_a_run_shows_one_row_per_step_in_graph_order_and_the_users_frames_of_a_failure(api, root):
    (root / "flow.ipynb").write_text(FLOW, encoding="utf-8")
    code, started = api.post("runs", {"path": "flow.ipynb", "params": {"floor": "2.5"}})
    assert code == 202, started
    status = wait_for_run(api, started["id"])
    assert status["state"] == "failed"
    rows = {row["step"]: row for row in status["rows"]}
    # the user's step names in graph order: no KFP task names, no condition or generated tasks
    assert [row["step"] for row in status["rows"]] == ["load_data", "train", "pick", "deploy", "audit"]
    assert (rows["train"]["status"], rows["train"]["done"], rows["train"]["total"], rows["train"]["loop"]) == \
        ("done", 3, 3, True)
    assert rows["deploy"]["status"] == "done" and rows["deploy"]["cells"] == [4]
    audit = rows["audit"]
    assert audit["status"] == "failed"
    assert audit["error"].splitlines()[0] == "ValueError: too good: 3.0"
    assert "cell 6 (audit), line 4, in <module>" in audit["error"]
    assert "cell 6 (audit), line 2, in check" in audit["error"]
    assert "component_runner" not in audit["error"] and "_kl_run_step" not in audit["error"]
    assert (audit["error_cell"], audit["error_line"]) == (5, 2)
    # a value the condition compares travels as a KFP parameter: previewed under its variable's name
    code, data = api.get(f"runs/{started['id']}/outputs", params={"task": "pick"})
    assert [(o["name"], o["text"]) for o in data["outputs"]] == [("best", "3.0")]
    # the run list of this notebook, newest first, with what was asked for
    api.post("runs", {"path": "tiny.ipynb"})
    code, listed = api.get("runs", params={"source": "flow.ipynb"})
    assert [(r["id"], r["params"]) for r in listed["runs"]] == [(started["id"], {"floor": "2.5"})]
    # the run folder: its files, each downloadable; nothing outside it
    assert status["folder"] == f".kale_like/runs/{status['kale_run_id']}"
    code, files = api.get(f"runs/{started['id']}/files")
    names = [f["name"] for f in files["files"]]
    assert code == 200 and "logs/audit.log" in names and files["folder"] == status["folder"]
    code, data = api.get(f"runs/{started['id']}/files/logs/audit.log")
    assert code == 200 and "too good: 3.0" in data["raw"]
    assert api.get(f"runs/{started['id']}/files/..%2F..%2F..%2Fflow.ipynb")[0] == 404
    assert api.get(f"runs/{started['id']}/files/logs/nothing.log")[0] == 404


def test_each_run_reports_the_metrics_its_steps_logged(api, root):
    (root / "scored.ipynb").write_text(notebook([
        ("n = 3", ["pipeline-parameters"]),
        ("score = n / 4\ncount = n * 2", ["step:make"]),
        ("print(score)\nprint(count)", ["pipeline-metrics"]),
    ]), encoding="utf-8")
    finished = []
    for params in ({}, {"n": "2"}):  # one run after the other
        finished.append(wait_for_run(api, api.post("runs", {"path": "scored.ipynb", "params": params})[1]["id"]))
    assert [(run["state"], run["message"]) for run in finished] == [("succeeded", "")] * 2
    assert [run["metrics"] for run in finished] == [{"score": 0.75, "count": 6}, {"score": 0.5, "count": 4}]


def test_a_steps_outputs_are_previewed_once_the_run_has_ended(api, root):
    (root / "outputs.ipynb").write_text(notebook([
        ("import matplotlib.pyplot as plt\nimport numpy as np\nimport pandas as pd", ["imports"]),
        ("frame = pd.DataFrame({'a': range(20), 'b': [i * 0.5 for i in range(20)]})\n"
         "grid = np.zeros((3, 4), dtype=np.float32)\nnote = 'hello ' * 3", ["step:make"]),
        ("fig, ax = plt.subplots(figsize=(4, 3))\nax.plot([1, 2, 3], [2, 1, 3])\nfig.savefig('chart.png')\n"
         "chart = 'chart.png'\npng = open(chart, 'rb').read()\nelsewhere = '../outside.png'", ["step:plot"]),
        ("total = float(frame['a'].sum() + grid.sum())\nprint(note, fig.get_size_inches(), chart, len(png), elsewhere)",
         ["step:use"]),
    ]), encoding="utf-8")
    (root.parent / "outside.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # outside the notebook's folder: not read
    code, started = api.post("runs", {"path": "outputs.ipynb"})
    assert wait_for_run(api, started["id"])["state"] == "succeeded"
    code, data = api.get(f"runs/{started['id']}/outputs", params={"task": "make"})
    assert code == 200, data
    shown = {o["name"]: o for o in data["outputs"]}
    assert shown["frame"]["summary"] == "DataFrame, 20 rows × 2 columns"
    assert shown["frame"]["columns"] == ["", "a", "b"] and shown["frame"]["rows"][1] == ["1", "1.0", "0.5"]
    assert len(shown["frame"]["rows"]) == 8  # the head
    assert shown["grid"]["summary"] == "ndarray of shape (3, 4), dtype float32"
    assert shown["note"]["text"] == repr("hello " * 3)
    # plots and images show as pictures: a figure, PNG bytes, an image file the step saved and named
    code, data = api.get(f"runs/{started['id']}/outputs", params={"task": "plot"})
    shown = {o["name"]: o for o in data["outputs"]}
    assert shown["fig"]["summary"] == "Figure (matplotlib), 320×240 px"  # 4 × 3 inches at 80 dpi
    assert shown["png"]["summary"] == "PNG image, 400×300 px"
    assert shown["chart"]["summary"] == "image file chart.png, 400×300 px"
    for name in ("fig", "png", "chart"):
        prefix, data_url = shown[name]["image"].split(",", 1)
        assert prefix == "data:image/png;base64" and base64.b64decode(data_url).startswith(b"\x89PNG"), name
    assert base64.b64decode(shown["png"]["image"].split(",", 1)[1]) == (root / "chart.png").read_bytes()
    assert "image" not in shown["elsewhere"] and shown["elsewhere"]["text"] == repr("../outside.png")
    code, data = api.get(f"runs/{started['id']}/outputs", params={"task": "use"})
    assert data["outputs"] == []  # no later step reads its variables
    assert api.get(f"runs/{started['id']}/outputs", params={"task": "nope"})[0] == 404


def test_pictures_of_other_kinds_and_what_is_not_a_picture(tmp_path, monkeypatch):
    """An Axes shows its figure, a PIL image and GIF bytes show as pictures; other bytes, a text that
    names no image file and a picture over the limit do not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from kale_like.surfaces.server import preview as previews

    figure, axes = plt.subplots(figsize=(2, 1))
    assert previews.preview("ax", axes)["summary"] == "Axes (matplotlib), 160×80 px"
    plt.close(figure)
    assert previews.preview("photo", Image.new("RGB", (30, 20)))["summary"] == "PIL image, 30×20 px"
    gif = previews.preview("gif", b"GIF89a\x05\x00\x07\x00" + bytes(20))
    assert gif["summary"] == "GIF image, 5×7 px" and gif["image"].startswith("data:image/gif;base64,")
    assert "image" not in previews.preview("raw", b"\x00\x01 not a picture")
    monkeypatch.chdir(tmp_path)
    assert "image" not in previews.preview("name", "missing.png")
    monkeypatch.setattr(previews, "IMAGE_LIMIT", 10)
    big = previews.preview("big", b"\x89PNG\r\n\x1a\n" + bytes(30))
    assert "image" not in big and big["summary"].endswith("too large to show here")


def test_a_run_with_a_bad_parameter_fails_with_the_message(api):
    code, started = api.post("runs", {"path": "tiny.ipynb", "params": {"nope": "1"}})
    assert code == 202
    status = wait_for_run(api, started["id"])
    assert status["state"] == "failed"
    assert "no parameter 'nope'" in status["message"]


def test_a_run_with_a_value_of_the_wrong_type_names_the_notebook_not_the_servers_path(api, root):
    """`abc` for an int parameter: the message names the type and the notebook as the panel does."""
    (root / "sub" / "typed.ipynb").write_text(TINY, encoding="utf-8")
    code, started = api.post("runs", {"path": "sub/typed.ipynb", "params": {"n": "abc"}})
    assert code == 202
    status = wait_for_run(api, started["id"])
    assert status["state"] == "failed"
    assert "parameter 'n': 'abc' is not a valid int" in status["message"]
    assert "sub/typed.ipynb" in status["message"] and str(root) not in json.dumps(status), status["message"]


def test_stop_ends_the_run_and_its_step_processes(api, jp_serverapp):
    code, started = api.post("runs", {"path": "slow.ipynb"})
    assert code == 202
    status = wait_for_run(api, started["id"], until=("running",), timeout=5)
    deadline = time.monotonic() + 60
    while not any(t["label"] == "sleepy" and t["status"] == "running" for t in status["tasks"]):
        assert time.monotonic() < deadline, status
        api.loop.run_until_complete(_sleep(0.3))
        status = api.get(f"runs/{started['id']}")[1]
        assert status["state"] == "running", status
    pgid = jp_serverapp.web_app.settings["kale_like_runs"].runs[started["id"]].process.pid
    # a server that died now: the next one lists the run as interrupted, its running step stopped
    later = RunManager()
    later.load(Path(jp_serverapp.root_dir) / ".kale_like", "slow.ipynb")
    seen = later.runs[started["id"]].status()
    assert (seen["state"], seen["finished"] is not None) == ("interrupted", True)
    assert seen["message"].startswith("the Jupyter server stopped while this run was going")
    assert {row["step"]: row["status"] for row in seen["rows"]} == {"first": "done", "sleepy": "stopped"}
    code, stopped = api.post(f"runs/{started['id']}/stop")
    assert code == 200
    assert stopped["state"] == "stopped"
    assert {t["label"]: t["status"] for t in stopped["tasks"]}["sleepy"] == "stopped"  # final as Stop answers
    status = wait_for_run(api, started["id"])
    assert status["state"] == "stopped"
    assert {t["label"]: t["status"] for t in status["tasks"]}["sleepy"] == "stopped"
    later = RunManager()
    later.load(Path(jp_serverapp.root_dir) / ".kale_like", "slow.ipynb")
    assert later.runs[started["id"]].state == "stopped"  # as recorded when it ended
    deadline = time.monotonic() + 15
    while alive_in_group(pgid):
        assert time.monotonic() < deadline, alive_in_group(pgid)
        time.sleep(0.2)


def alive_in_group(pgid: int) -> list[str]:
    """Processes of the group that are still running (zombies waiting for a reaper do not count)."""
    lines = subprocess.run(["ps", "-o", "pid=,stat=", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [line for line in lines.splitlines() if line.split() and not line.split()[1].startswith("Z")]


def test_unknown_runs_are_404(api):
    assert api.get("runs/0123456789ab")[0] == 404
    assert api.post("runs/0123456789ab/stop")[0] == 404


# -------------------------------------------------------------------------------------- KFP

def test_kfp_status_without_a_host_says_so(api):
    code, data = api.get("kfp/status")
    assert code == 200
    assert data["configured"] is False and data["reachable"] is False
    assert "Run locally work" in data["message"]


def test_kfp_status_of_an_unreachable_host(api, monkeypatch):
    host = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", host)  # the status check connects only to a configured host
    started = time.perf_counter()
    code, data = api.get("kfp/status", params={"host": host})
    assert code == 200
    assert data["configured"] is True and data["reachable"] is False
    assert "cannot reach the KFP API" in data["message"]
    assert time.perf_counter() - started < 8


def test_kfp_status_of_a_host_that_is_not_a_url(api, monkeypatch):
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", "kfp.local")
    code, data = api.get("kfp/status", params={"host": "kfp.local"})
    assert data["reachable"] is False and "http" in data["message"]


def test_upload_to_an_unreachable_host_is_a_clear_400(api):
    host = f"http://127.0.0.1:{closed_port()}"
    code, data = api.post("upload", {"path": "tiny.ipynb", "host": host})
    assert code == 400
    assert data["message"].startswith(f"error: {host}: cannot reach the KFP API")
    assert "hint:" in data["message"]
    assert api.post("upload", {"path": "tiny.ipynb", "host": ""})[0] == 400


def test_upload_of_a_bad_notebook_names_the_problem_before_any_network_call(api, root):
    code, data = api.post("upload", {"path": "bad_tag.ipynb", "host": "http://127.0.0.1:1"})
    assert code == 400
    assert data["message"] == cli_message(root, "bad_tag.ipynb")


def test_cron_preview(api):
    code, data = api.post("schedule/preview", {"cron": "0 2 * * 0"})
    assert code == 200
    assert data["kfp_cron"] == "0 0 2 * * 0"
    assert len(data["next"]) == 3 and all("02:00 UTC (Sun)" in t for t in data["next"])
    code, data = api.post("schedule/preview", {"cron": "every sunday"})
    assert code == 400
    assert data["message"].startswith("error: schedule 'every sunday'")


def test_schedule_checks_the_cron_before_any_network_call(api):
    code, data = api.post("schedule", {"path": "tiny.ipynb", "host": "http://127.0.0.1:1", "cron": "61 * * * *"})
    assert code == 400
    assert "not a valid cron expression" in data["message"]


def test_schedule_with_a_max_concurrency_that_is_not_a_number(api):
    code, data = api.post("schedule", {"path": "tiny.ipynb", "host": "http://127.0.0.1:1", "cron": "0 2 * * 0",
                                       "max_concurrency": "two"})
    assert code == 400
    assert "max_concurrency must be a whole number" in data["message"]


def test_schedule_on_an_unreachable_host(api):
    host = f"http://127.0.0.1:{closed_port()}"
    code, data = api.post("schedule", {"path": "tiny.ipynb", "host": host, "cron": "*/15 * * * *"})
    assert code == 400
    assert "cannot reach the KFP API" in data["message"]


# ------------------------------------------------------------------------ the one tag grammar

def test_the_panel_grammar_is_generated_from_the_python_grammar():
    result = subprocess.run([sys.executable, str(REPO / "labextension" / "scripts" / "generate_grammar.py"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_extension_is_registered_for_jupyter():
    import kale_like

    assert kale_like._jupyter_server_extension_points() == [{"module": "kale_like.surfaces.server"}]
    (path,) = kale_like._jupyter_labextension_paths()
    assert path["dest"] == "kale-like"
    config = json.loads((REPO / "jupyter-config" / "server-config" / "kale_like.json").read_text())
    assert config["ServerApp"]["jpserver_extensions"] == {"kale_like": True}


# ------------------------------------------------------------- KFP, against a fake KFP API server

@pytest.fixture
def fake_kfp():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from kfp_api_server import FakeKfp

    with FakeKfp() as server:
        yield server


def test_kfp_status_of_a_kfp_api(api, fake_kfp, monkeypatch):
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", fake_kfp.url)
    code, data = api.get("kfp/status", params={"host": fake_kfp.url})
    assert code == 200
    assert data["reachable"] is True and data["message"] == f"connected to {fake_kfp.url}"


def test_upload_and_run_on_kfp(api, root, fake_kfp):
    code, data = api.post("upload", {"path": "tiny.ipynb", "host": fake_kfp.url, "run_name": "from-the-panel",
                                     "params": {"n": "7"}})
    assert code == 200, data
    assert data["run_url"] == f"{fake_kfp.url}/#/runs/details/{data['run_id']}"
    assert data["run_name"] == "from-the-panel" and data["experiment"] == "tests"
    assert data["yaml_path"] == "tiny.yaml" and (root / "tiny.yaml").exists()
    (run,) = fake_kfp.runs.values()
    assert run["display_name"] == "from-the-panel"
    assert run["runtime_config"]["parameters"] == {"n": 7}
    assert [p["display_name"] for p in fake_kfp.pipelines.values()] == ["tiny"]
    assert fake_kfp.violations == []


def test_a_wrongly_typed_run_parameter_is_refused_before_upload(api, fake_kfp):
    code, data = api.post("upload", {"path": "tiny.ipynb", "host": fake_kfp.url, "params": {"n": "seven"}})
    assert code == 400
    assert "not a valid int" in data["message"]
    assert fake_kfp.pipelines == {}


def test_schedule_on_kfp(api, fake_kfp):
    code, data = api.post("schedule", {"path": "tiny.ipynb", "host": fake_kfp.url, "cron": "0 2 * * 0",
                                       "name": "weekly"})
    assert code == 200, data
    assert data["kfp_cron"] == "0 0 2 * * 0" and len(data["next"]) == 3
    (job,) = fake_kfp.recurring_runs.values()
    assert job["display_name"] == "weekly"
    assert job["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * 0"
    assert fake_kfp.violations == []


TINY_WITH_ACCOUNT = notebook([("x = 1", ["step:make"])],
                             {"kubeflow_notebook": {"pipeline_name": "tiny-account",
                                                    "service_account": "pipeline-runner"}})


def test_the_notebooks_service_account_is_used_for_runs_and_schedules(api, root, fake_kfp):
    (root / "account.ipynb").write_text(TINY_WITH_ACCOUNT, encoding="utf-8")
    code, ran = api.post("upload", {"path": "account.ipynb", "host": fake_kfp.url})
    assert code == 200, ran
    code, scheduled = api.post("schedule", {"path": "account.ipynb", "host": fake_kfp.url, "cron": "0 2 * * 0"})
    assert code == 200, scheduled
    (run,) = fake_kfp.runs.values()
    (job,) = fake_kfp.recurring_runs.values()
    assert run["service_account"] == job["service_account"] == "pipeline-runner"
    assert ran["service_account"] == scheduled["service_account"] == "pipeline-runner"
    assert fake_kfp.violations == []


def test_a_requests_service_account_overrides_the_notebooks(api, root, fake_kfp):
    (root / "account.ipynb").write_text(TINY_WITH_ACCOUNT, encoding="utf-8")
    code, data = api.post("schedule", {"path": "account.ipynb", "host": fake_kfp.url, "cron": "0 2 * * 0",
                                       "service_account": "team-a-editor"})
    assert code == 200, data
    (job,) = fake_kfp.recurring_runs.values()
    assert job["service_account"] == "team-a-editor"
    code, data = api.post("upload", {"path": "tiny.ipynb", "host": fake_kfp.url, "service_account": "Not Valid"})
    assert code == 400 and "is not a Kubernetes service account name" in data["message"]
    assert fake_kfp.runs == {}


def test_a_kfp_server_error_is_reported_with_its_message(api, fake_kfp):
    fake_kfp.fail("POST /apis/v2beta1/runs", 500, "the database is down")
    code, data = api.post("upload", {"path": "tiny.ipynb", "host": fake_kfp.url})
    assert code in (400, 502)
    assert "starting the run failed" in data["message"] and "the database is down" in data["message"]


# --------------------------------------------------------------------- target KFP server version

LOOP_IN_EXIT = notebook([
    ("items = [1, 2]", ["pipeline-parameters"]),
    ("print('item', item)", ["step:work", "foreach:item:items"]),
    ("print(pipeline_status['state'])", ["exit-handler"]),
], {"kubeflow_notebook": {"pipeline_name": "loop-in-exit"}})


def test_the_panels_kfp_version_travels_to_compile(api, root):
    (root / "loop.ipynb").write_text(LOOP_IN_EXIT, encoding="utf-8")
    code, data = api.post("compile", {"path": "loop.ipynb"})  # the default target, 2.14, cannot run it
    assert code == 400
    assert data["message"].startswith("error: loop.ipynb: the exit step 'exit-handler' runs after a group holding a loop")
    assert "exit step 'exit-handler'" in data["message"] and "--kfp-version 2.15" in data["message"]
    assert not (root / "loop.yaml").exists()
    code, data = api.post("compile", {"path": "loop.ipynb", "kfp_version": "2.16"})
    assert code == 200, data
    assert data["kfp_version"] == "2.16"
    assert any("on KFP 2.16" in w for w in data["warnings"])  # the exit step's status may read RUNNING
    code, data = api.post("compile", {"path": "loop.ipynb", "kfp_version": "2.17"})
    assert code == 200 and data["kfp_version"] == "2.17" and data["warnings"] == []


@pytest.mark.parametrize("route", ["compile", "runs", "upload", "schedule"])
def test_a_bad_kfp_version_is_a_400_naming_the_setting(api, route):
    body = {"path": "tiny.ipynb", "kfp_version": "2.9", "host": "http://127.0.0.1:1", "cron": "0 2 * * 0"}
    code, data = api.post(route, body)
    assert code == 400, data
    assert "the KFP server version setting" in data["message"] and "'2.9' is not a KFP server version" in data["message"]
    code, data = api.post(route, {**body, "kfp_version": 2.15})
    assert code == 400


def test_a_local_run_from_the_panel_follows_the_kfp_version(api, root):
    (root / "loop.ipynb").write_text(LOOP_IN_EXIT, encoding="utf-8")
    code, started = api.post("runs", {"path": "loop.ipynb"})
    assert code == 202
    status = wait_for_run(api, started["id"])
    assert status["state"] == "failed" and "on KFP 2.14" in status["message"]
    code, started = api.post("runs", {"path": "loop.ipynb", "kfp_version": "2.15"})
    assert code == 202
    status = wait_for_run(api, started["id"])
    assert status["state"] == "succeeded", status
    assert any("on KFP 2.15" in w for w in status["warnings"])


def test_upload_checks_the_kfp_version_before_any_network_call(api, root, fake_kfp):
    (root / "loop.ipynb").write_text(LOOP_IN_EXIT, encoding="utf-8")
    code, data = api.post("upload", {"path": "loop.ipynb", "host": fake_kfp.url})
    assert code == 400 and "on KFP 2.14" in data["message"]
    assert fake_kfp.pipelines == {}
    code, data = api.post("upload", {"path": "loop.ipynb", "host": fake_kfp.url, "kfp_version": "2.17"})
    assert code == 200, data
    assert data["kfp_version"] == "2.17" and data["warnings"] == []
    assert fake_kfp.violations == []


# ---------------------------------------------------------------------------------- ipywidgets

def test_show_draws_the_graph_of_a_notebook():
    pytest.importorskip("ipywidgets")
    import kale_like

    box = kale_like.show(EXAMPLES / "parallel_branches.ipynb")
    html_parts = [child.value for child in box.children]
    assert "<b>parallel-branches</b>: 4 steps, 4 dependencies" in html_parts[0]
    svg = html_parts[1]
    for step in ("load_data", "train_logreg", "train_forest", "compare"):
        assert f'data-step="{step}"' in svg
    assert 'data-source="load_data" data-target="train_logreg"' in svg and "X_train" in svg
    assert "n_estimators" in html_parts[2]


def test_show_draws_loops_and_branches_of_a_pipeline_file():
    pytest.importorskip("ipywidgets")
    import re

    import kale_like

    box = kale_like.show(REPO / "examples" / "pipelines" / "train_many_pick_best.py")
    svg = box.children[1].value
    # each loop and branch is a box (drawn behind the steps) with its label
    assert re.findall(r'<rect class="group" data-group="([^"]+)" data-kind="(\w+)"', svg) == [
        ("for-1", "loop"), ("if-2/0", "branch"), ("if-2/1", "branch")]
    assert re.findall(r'class="group-label"[^>]*>([^<]+)<', svg) == [
        "for seed in seeds, 3 at a time", "if pick_best.best &gt;= threshold", "else"]


def test_the_run_progress_widget_draws_the_graph_in_the_runs_statuses():
    """The notebook's live run view: the graph, each step filled with its status, a loop's box counting
    its iterations (as the panel does)."""
    pytest.importorskip("ipywidgets")
    from kale_like.backends.local.scheduler import TaskEvent
    from kale_like.surfaces.api import load_graph
    from kale_like.surfaces.widgets import RunProgress

    document = json.loads(load_graph(REPO / "examples" / "pipelines" / "train_many_pick_best.py").to_json())
    progress = RunProgress("a run", document)
    progress.expect([step["name"] for step in document["steps"]])
    for path, label, status in (("root/prepare", "prepare", "done"), ("root/for-loop-1[0]/train", "train[0]", "done"),
                                ("root/for-loop-1[1]/train", "train[1]", "running"),
                                ("root/for-loop-1[2]/train", "train[2]", "pending")):
        progress.observe(TaskEvent(path, label, status, 1.0))
    svg = progress.graph.value
    assert dict(re.findall(r'data-step="([^"]+)" data-status="([^"]*)"', svg)) == {
        "prepare": "done", "train": "running", "pick_best": "pending", "deploy": "pending", "alert": "pending"}
    assert re.search(r'data-group="for-1"[^>]*>for seed in seeds, 3 at a time<tspan[^>]*>  1/3 done</tspan>', svg)


def test_show_draws_the_exit_handler_below_the_body():
    pytest.importorskip("ipywidgets")
    import re

    import kale_like

    svg = kale_like.show(REPO / "tests" / "fixtures" / "production" / "exit_handler_cell.ipynb").children[1].value
    nodes = dict(re.findall(r'data-step="([^"]+)" data-status="" transform="translate\([0-9.]+,([0-9.]+)\)"', svg))
    assert "exit_handler" in nodes, svg
    assert all(float(nodes["exit_handler"]) > float(y) for name, y in nodes.items() if name != "exit_handler")
    exit_node = svg[svg.index('data-step="exit_handler"'):].split("</g>")[0]
    assert "⚑ runs last, always" in exit_node and 'stroke-dasharray="6 3"' in exit_node


def test_show_reports_problems_with_the_cli_message(tmp_path):
    pytest.importorskip("ipywidgets")
    import kale_like

    (tmp_path / "bad.ipynb").write_text(BAD_TAG, encoding="utf-8")
    widget = kale_like.show(tmp_path / "bad.ipynb")
    assert "error: " in widget.value and "unknown tag &#x27;stpe:train&#x27;" in widget.value


def test_run_progress_follows_task_events():
    pytest.importorskip("ipywidgets")
    from kale_like.backends.local.scheduler import TaskEvent
    from kale_like.surfaces.widgets import RunProgress

    progress = RunProgress("test")
    progress.expect(["make", "use"])
    assert progress.bar.max == 2 and progress.bar.value == 0
    progress.observe(TaskEvent("root/make", "make", "running"))
    progress.observe(TaskEvent("root/make", "make", "done", 1.5))
    assert progress.bar.value == 1
    progress.observe(TaskEvent("root/use", "use", "failed", 0.2, "ValueError: boom"))
    assert "ValueError: boom" in progress.table.value
    assert progress.table.value.count("kale-like-task") == 2


def test_run_progress_shows_a_row_per_step_under_its_name_and_a_loops_iterations():
    pytest.importorskip("ipywidgets")
    from kale_like.backends.local.scheduler import TaskEvent
    from kale_like.surfaces.widgets import RunProgress

    progress = RunProgress("test")
    progress.expect(["load_data", "train", "report"])
    for path, label in (("root/load-data", "load_data"), ("root/for-loop-1[0]/train", "train[0]"),
                        ("root/for-loop-1[1]/train", "train[1]"), ("root/condition-2", "condition-2")):
        progress.observe(TaskEvent(path, label, "done", 0.1))
    rows = re.findall(r"data-step='([a-z_]+)' data-status='([a-z ]+)'", progress.table.value)
    assert rows == [("load_data", "done"), ("train", "done"), ("report", "pending")]
    assert "done (2/2)" in progress.table.value and "condition" not in progress.table.value

    class Result:
        succeeded, error = False, "use failed"

    progress.finish(Result())
    assert progress.bar.bar_style == "danger" and "failed" in progress.label.value
