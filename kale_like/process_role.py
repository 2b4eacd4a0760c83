"""Whether the command line owns this process (`python -m kale_like`).

Some speed-ups change the process itself: importing kfp without its client (kfp then lacks
`kfp.Client`), forking workers to analyse code. They are right where nothing of the user's runs
beside us, and wrong in a user's script, an IPython kernel or a Jupyter server. The command line
says so once, first thing; everything else asks.
"""

from __future__ import annotations

_OWNED: list[bool] = []  # holds True once the command line has said it owns the process


def owned_by_command_line() -> None:
    """Said by the command line's `main`, before anything else runs."""
    _OWNED.append(True)


def forked_for_kale_like() -> None:
    """Said first thing by a process kale_like forked for its own work (a compile kept out of a user's
    script, a worker running steps): nothing of the user's runs there beside us either."""
    _OWNED.append(True)


def command_line_process() -> bool:
    """Whether kale_like owns this process: the command line's, or one forked for kale_like's work."""
    return bool(_OWNED)
