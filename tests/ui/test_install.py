"""The installed extension: Jupyter lists both halves as enabled, and a wheel carries the prebuilt
JupyterLab extension and the server extension's config (as `pip install .` installs them)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile

from ui_lab import REPO


def jupyter(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120)
    return re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)


def test_jupyter_lists_the_lab_extension_enabled():
    assert re.search(r"kale-like v0\.1\.0 enabled\s+OK \(python, kale_like\)", jupyter("labextension", "list"))


def test_jupyter_lists_the_server_extension_enabled():
    listing = jupyter("server", "extension", "list")
    assert re.search(r"kale_like enabled", listing)
    assert re.search(r"kale_like 0\.1\.0 OK", listing)


def test_the_wheel_carries_the_prebuilt_extension_and_the_server_config(tmp_path):
    # the build hook skips the JavaScript build when the extension is already built (skip-if-exists)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("kale_like-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = "kale_like-0.1.0.data/data/"
    assert f"{data}share/jupyter/labextensions/kale-like/package.json" in names
    assert f"{data}share/jupyter/labextensions/kale-like/install.json" in names
    assert f"{data}share/jupyter/labextensions/kale-like/static/style.js" in names
    assert any(n.startswith(f"{data}share/jupyter/labextensions/kale-like/static/remoteEntry.") for n in names)
    assert f"{data}share/jupyter/labextensions/kale-like/schemas/kale-like/plugin.json" in names
    assert f"{data}etc/jupyter/jupyter_server_config.d/kale_like.json" in names
    config = json.loads(zipfile.ZipFile(wheel).read(f"{data}etc/jupyter/jupyter_server_config.d/kale_like.json"))
    assert config == {"ServerApp": {"jpserver_extensions": {"kale_like": True}}}
    assert "kale_like/surfaces/server/handlers.py" in names
    assert not [n for n in names if n.startswith("kale_like/surfaces/server/labextension/")]  # one copy only
