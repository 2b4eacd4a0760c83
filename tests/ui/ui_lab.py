"""The browser tests' JupyterLab: a `jupyter lab` subprocess with this checkout's extension, and helpers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "kale_like" / "surfaces" / "server" / "labextension"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """A `jupyter lab` subprocess on a free port, with its own root, settings and workspaces."""

    def __init__(self, base: Path, with_extension: bool = True):
        self.base = base
        self.root = base / "root"
        self.with_extension = with_extension
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log_path = base / "jupyter.log"
        self.started_in = 0.0

    def start(self) -> Lab:
        for folder in ("root", "settings", "workspaces", "config/labconfig", "labextensions"):
            (self.base / folder).mkdir(parents=True, exist_ok=True)
        # no "Jupyter news?" toast over the screenshots
        notification = self.base / "settings" / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True, exist_ok=True)
        (notification / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        link = self.base / "labextensions" / "kale-like"
        if not link.is_symlink():
            link.symlink_to(BUILD, target_is_directory=True)
        server_config = self.base / "config" / "jupyter_server_config.json"
        server_config.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"kale_like": self.with_extension}}}))
        (self.base / "config" / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {} if self.with_extension else {"kale-like": True}}))
        command = [
            sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}", "--port-retries=0",
            "--ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=False", "--LabApp.expose_app_in_browser=True",
            f"--LabApp.workspaces_dir={self.base / 'workspaces'}",
            f"--LabApp.user_settings_dir={self.base / 'settings'}",
            f"--LabServerApp.extra_labextensions_path={self.base / 'labextensions'}",
            f"--ServerApp.root_dir={self.root}",
        ] + (["--allow-root"] if os.geteuid() == 0 else [])
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(self.base / "config"), "KFP_TOKEN": "",
               "KF_PIPELINES_ENDPOINT": "", "PYTHONUNBUFFERED": "1"}
        started = time.perf_counter()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root)
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(self.url + "/api/status", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not start:\n{self.log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.2)
        self.started_in = time.perf_counter() - started
        return self

    def restart(self) -> Lab:
        """Stop the server and start a new one on the same root, settings and workspaces (a new port)."""
        self.stop()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        return self.start()

    def get(self, route: str):
        with urllib.request.urlopen(self.url + route, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def copy_example(lab: Lab, name: str) -> str:
    shutil.copy(REPO / "examples" / "notebooks" / name, lab.root / name)
    return name


def open_lab(page, lab: Lab) -> float:
    """Load JupyterLab; milliseconds from navigation to the restored shell."""
    page.goto(lab.url + "/lab?reset", wait_until="domcontentloaded")
    page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
    return page.evaluate("window.jupyterapp.restored.then(() => performance.now())")
