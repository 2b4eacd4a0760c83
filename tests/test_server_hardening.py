"""The server extension's answers to malformed and hostile requests: a 4xx with a message, never a
500, and nothing written where Jupyter would not write (hidden folders while `allow_hidden` is off:
`.ipython/profile_default/startup` holds code IPython runs at start-up).

Uses the fixtures of test_server_api.py (a real jupyter_server through pytest-jupyter).
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("jupyter_server")
pytest.importorskip("pytest_jupyter")

from pytest_jupyter.jupyter_core import *  # noqa: E402,F403 - fixtures, for this module only
from pytest_jupyter.jupyter_server import *  # noqa: E402,F403
from test_server_api import api, fake_kfp, jp_server_config, root  # noqa: E402,F401 - fixtures

ROUTES_WITH_PATHS = ("analyze", "section-tags", "compile", "runs", "upload", "schedule")
BAD_PATHS = {
    "nul": "tiny\0.ipynb",
    "lone-surrogate": "tiny\udc80.ipynb",
    "100000-characters": "a" * 100_000 + ".ipynb",
    "long-name": "sub/" + "n" * 300 + ".ipynb",
}


def post_raw(api, route: str, body: bytes):
    response = api.loop.run_until_complete(
        api.fetch("kale-like", route, method="POST", body=body, raise_error=False))
    return response.code, json.loads(response.body or b"{}")


@pytest.mark.parametrize("path", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_paths_no_file_system_takes_are_a_400_on_every_route(api, path):
    for route in ROUTES_WITH_PATHS:
        body = json.dumps({"path": path, "host": "http://127.0.0.1:1", "cron": "0 2 * * 0"}).encode()
        code, data = post_raw(api, route, body)
        assert code == 400, (route, code, data)
        assert data["message"] and "Traceback" not in data["message"]


@pytest.mark.parametrize("folder", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_output_folders_no_file_system_takes_are_a_400(api, folder):
    code, data = post_raw(api, "compile", json.dumps({"path": "tiny.ipynb", "output_folder": folder}).encode())
    assert code == 400, data


@pytest.mark.parametrize("folder", [".ipython/profile_default/startup", "out/.hidden", ".."])
def test_compile_does_not_write_into_hidden_folders(api, root, folder):
    code, data = api.post("compile", {"path": "tiny.ipynb", "output_folder": folder})
    assert code == 403, data
    assert not list(root.rglob("tiny_kfp.py")) and not list(root.rglob("tiny.yaml"))
    code, data = api.post("upload", {"path": "tiny.ipynb", "output_folder": folder, "host": "http://127.0.0.1:1"})
    assert code == 403, data


def test_a_symlink_to_a_hidden_folder_is_refused_as_an_output_folder(api, root):
    (root / ".ipython" / "profile_default" / "startup").mkdir(parents=True)
    (root / "startup").symlink_to(root / ".ipython" / "profile_default" / "startup")
    code, data = api.post("compile", {"path": "tiny.ipynb", "output_folder": "startup"})
    assert code == 403 and "hidden" in data["message"], data
    assert list((root / ".ipython" / "profile_default" / "startup").iterdir()) == []


def test_an_output_folder_that_is_not_text_is_a_400(api):
    assert api.post("compile", {"path": "tiny.ipynb", "output_folder": ["a"]})[0] == 400


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_bodies_are_a_400(api, depth):
    for nested in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        code, data = post_raw(api, "analyze", ('{"path": "tiny.ipynb", "notebook": ' + nested + "}").encode())
        assert code == 400, data
        assert "nested" in data["message"]


def test_an_ordinary_notebook_body_still_passes(api, root):
    notebook = json.loads((root / "tiny.ipynb").read_text(encoding="utf-8"))
    code, data = api.post("analyze", {"path": "tiny.ipynb", "notebook": notebook})
    assert code == 200, data


@pytest.mark.parametrize("host", ["http://127.0.0.1:1/\0", "http://" + "h" * 10_000, "http://[::1",
                                  "http://127.0.0.1:99999"])
def test_a_malformed_kfp_host_is_a_400_naming_it(api, host):
    code, data = api.post("upload", {"path": "tiny.ipynb", "host": host})
    assert code == 400 and "KFP host" in data["message"], (code, data)
    if "\0" not in host:  # tornado drops control characters from query arguments
        code, data = api.get("kfp/status", params={"host": host})
        assert code == 400 and "KFP host" in data["message"], (code, data)


# ------------------------------------------------------------ the status check's host

def lab_settings(folder, host: str) -> None:
    """The panel's saved settings, as JupyterLab writes them (JSON5, with a comment)."""
    path = folder / "kale-like" / "plugin.jupyterlab-settings"
    path.parent.mkdir(parents=True)
    path.write_text('{\n    // kale_like pipelines\n    "kfpHost": "%s/",\n}\n' % host, encoding="utf-8")


def test_the_status_check_connects_only_to_the_configured_host(api, fake_kfp, monkeypatch, tmp_path):
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path / "settings"))
    code, data = api.get("kfp/status", params={"host": fake_kfp.url})
    assert code == 403 and "not the Kubeflow Pipelines host in your settings" in data["message"], data
    assert fake_kfp.requests == []  # nothing was sent there, the server's KFP_TOKEN least of all

    lab_settings(tmp_path / "settings", fake_kfp.url)  # saved in Settings → kale_like pipelines
    code, data = api.get("kfp/status", params={"host": fake_kfp.url})
    assert code == 200 and data["reachable"] is True, data
    assert api.get("kfp/status", params={"host": "http://127.0.0.1:1"})[0] == 403


def test_the_servers_kf_pipelines_endpoint_counts_as_configured(api, fake_kfp, monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", fake_kfp.url)
    code, data = api.get("kfp/status", params={"host": fake_kfp.url + "/"})
    assert code == 200 and data["reachable"] is True, data
