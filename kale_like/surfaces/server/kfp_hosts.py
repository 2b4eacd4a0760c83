"""The KFP host a request names, checked before anything connects to it.

A host is an http(s) address the standard library can parse: a NUL or other control character,
text beyond 2,048 characters, a malformed IPv6 literal or a port outside 1-65535 is a 400 naming the
problem (those used to escape as a 500 from the URL parser).

The status check (`kfp/status`, a GET: a page on another site can make the browser send one with
the user's login cookie) connects only to a host the user configured: the panel's setting (Settings
→ kale_like pipelines → Kubeflow Pipelines host, read from JupyterLab's user settings) or the
server's `KF_PIPELINES_ENDPOINT`. Otherwise it would probe any address and port for that page, and
send the server's `KFP_TOKEN` along. Upload and Schedule are POSTs under Jupyter's XSRF check: only
the user's own panel can send them.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from pathlib import Path

from kale_like.surfaces.server.paths import PathRefused

PLUGIN_SETTINGS = Path("kale-like") / "plugin.jupyterlab-settings"  # the panel's plugin id: kale-like:plugin

MOST_HOST_CHARACTERS = 2048


def checked_host(text: object) -> str:
    """The host without surrounding spaces and trailing `/` ('' when none is given); PathRefused(400)
    when it cannot be an address."""
    if not isinstance(text, str):
        raise PathRefused(400, "the KFP host must be text such as http://localhost:8080")
    host = text.strip().rstrip("/")
    shown = host if len(host) <= 80 else host[:77] + "..."
    if len(host) > MOST_HOST_CHARACTERS:
        raise PathRefused(400, f"the KFP host {shown!r} is longer than {MOST_HOST_CHARACTERS} characters")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in host):
        raise PathRefused(400, f"the KFP host {shown!r} holds a control character or invalid text")
    if not host:
        return ""
    try:
        parts = urllib.parse.urlsplit(host)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise PathRefused(400, f"the KFP host {shown!r} is not a valid address ({error})") from None
    return host


def configured_hosts(lab_settings_dir: str | None) -> set[str]:
    """The KFP hosts the user configured: the panel's setting and the server's environment."""
    hosts = {os.environ.get("KF_PIPELINES_ENDPOINT", "")}
    folder = lab_settings_dir or os.environ.get("JUPYTERLAB_SETTINGS_DIR") or _default_settings_dir()
    try:
        text = (Path(folder) / PLUGIN_SETTINGS).read_text(encoding="utf-8")
        value = _settings(text).get("kfpHost", "")
    except (OSError, ValueError, AttributeError):
        value = ""
    hosts.add(value if isinstance(value, str) else "")
    return {host.strip().rstrip("/") for host in hosts} - {""}


def lab_settings_dir(server_app) -> str | None:
    """JupyterLab's user settings folder, as the running JupyterLab has it (None: not running in one)."""
    for apps in server_app.extension_manager.extension_apps.values():
        for app in apps:
            folder = getattr(app, "user_settings_dir", "")
            if isinstance(folder, str) and folder:
                return folder
    return None


def _default_settings_dir() -> str:
    from jupyter_core.paths import jupyter_config_dir

    return os.path.join(jupyter_config_dir(), "lab", "user-settings")


def _settings(text: str) -> dict:
    """A `.jupyterlab-settings` file: JSON5 (comments allowed) as JupyterLab writes it."""
    try:
        import json5

        return json5.loads(text)
    except ImportError:  # JupyterLab's server extension brings json5; without it, comments are dropped
        return json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE))
