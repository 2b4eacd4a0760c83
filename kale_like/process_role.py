"""Whether kale_like owns this process (`python -m kale_like`, and the processes it starts).

Some speed-ups change the process itself: importing kfp without its client (kfp then lacks
`kfp.Client`), forking workers to analyse code. They are right where nothing of the user's runs
beside us, and wrong in a user's script, an IPython kernel or a Jupyter server. Each such process
says so once, first thing; everything else asks.
"""

from __future__ import annotations

_OWNED: list[bool] = []  # holds True once the process is said to be kale_like's


def owned_by_kale_like() -> None:
    """Said first thing by a process that runs nothing of the user's beside kale_like: the command
    line's `main`, the panel's run worker, a child forked to compile for a user's script, a local
    run's worker process."""
    _OWNED.append(True)


def kale_like_owns_process() -> bool:
    return bool(_OWNED)
