"""Importing the kfp SDK without its client: compiling and running locally never talk to a server.

`kfp/__init__.py` imports `kfp.client`, and with it `kubernetes` and `kfp_server_api` (~0.25 s of
a 0.35 s `import kfp.compiler`), unless the environment variable `_KFP_RUNTIME` is `true`: kfp's own
switch, which every KFP step container sets (`_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main`)
so that a step imports kfp without its compile-time and client dependencies. `load_kfp` imports the
`kfp` package with that switch on, then turns it back off, so the submodules imported afterwards
(`kfp.dsl`, `kfp.compiler`) are the whole SDK; nothing of kfp is replaced or changed.

The package imported that way lacks the attributes its `__init__` would have added by importing the
client: `kfp.Client`. `kfp.client.Client` (and `from kfp.client import Client`) works as always. So
the switch is used only in a process kale_like owns (`kale_like/process_role.py`: the command
line's, a child forked to compile for a user's script, a local run's worker, whose steps then
import kfp as a KFP step container does); never where the user's own code may look for
`kfp.Client` later (a script calling `kale_like.compile`, an IPython kernel) or where other threads
may start processes while the environment variable is set (a Jupyter server). There, and when kfp
is already imported, kfp is imported as it is.
"""

from __future__ import annotations

import os
import sys
import threading

from kale_like.process_role import kale_like_owns_process

_SWITCH = "_KFP_RUNTIME"
_LOCK = threading.Lock()


def load_kfp() -> None:
    """Import the `kfp` package, without `kfp.client` where nothing else in the process can need it."""
    if "kfp" in sys.modules:
        return
    with _LOCK:
        if "kfp" in sys.modules:
            return
        if not client_free():
            import kfp  # noqa: F401  (as it is: with its client)
            return
        previous = os.environ.get(_SWITCH)
        os.environ[_SWITCH] = "true"
        try:
            import kfp  # noqa: F401
        finally:
            if previous is None:
                os.environ.pop(_SWITCH, None)
            else:
                os.environ[_SWITCH] = previous


def client_free() -> bool:
    """Whether kfp may be imported without its client: in the command line's process, not in an IPython
    kernel or a Jupyter server."""
    return kale_like_owns_process() and "IPython" not in sys.modules and "jupyter_server" not in sys.modules
