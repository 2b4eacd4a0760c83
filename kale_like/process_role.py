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


def command_line_process() -> bool:
    return bool(_OWNED)
