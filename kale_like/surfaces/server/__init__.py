"""The Jupyter server extension behind kale_like's JupyterLab panel.

REST endpoints under `<base_url>/kale-like/` (see `handlers.py`): analyse, compile, local runs
(start / status / logs / stop), KFP status, upload and schedule. Every handler uses Jupyter's own
authentication and XSRF protection, reads only files inside the server's root directory, and runs
slow work (analysis, compilation, KFP calls) off the event loop; local runs are subprocesses.

Loading the extension imports only tornado and this package's light modules: the converter (libcst,
kfp) is imported on first use, in a worker thread, so JupyterLab starts as fast as without it.
"""

from __future__ import annotations

NAMESPACE = "kale-like"


def _load_jupyter_server_extension(server_app) -> None:
    """Register the handlers (called by jupyter_server for `jpserver_extensions: {kale_like: true}`)."""
    from kale_like.surfaces.server.handlers import setup_handlers

    setup_handlers(server_app)
    server_app.log.info("kale_like: pipeline panel API at %s%s/", server_app.base_url, NAMESPACE)


# jupyter_server also accepts the older name
load_jupyter_server_extension = _load_jupyter_server_extension
