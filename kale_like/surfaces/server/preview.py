"""Previews of a step's outputs for the panel: a DataFrame's head as a table, an array's shape and
dtype, any other value's text, each cut short.

`python -m kale_like.surfaces.server.preview` reads `{"NAME": [URI, ...]}` on stdin and prints
`[{"name", "kind", "summary", "columns"?, "rows"?, "text"?}, ...]`. It runs in a process of its own:
reading a stored value may unpickle the user's objects (and import pandas or their modules), which
the Jupyter server's process should neither do nor wait on.
"""

from __future__ import annotations

import json
import sys
from typing import Any

HEAD_ROWS = 8
TEXT_LIMIT = 2000
CELL_LIMIT = 60


def preview(name: str, value: Any) -> dict:
    """What the panel shows of one value."""
    kind = type(value).__name__
    frame = _as_frame(value)
    if frame is not None:
        head = frame.head(HEAD_ROWS)
        return {"name": name, "kind": kind, "summary": f"{kind}, {frame.shape[0]} rows × {frame.shape[1]} columns",
                "columns": [_cut(str(c)) for c in [frame.index.name or "", *head.columns]],
                "rows": [[_cut(str(i)), *(_cut(str(v)) for v in row)] for i, row in zip(head.index, head.values)]}
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if isinstance(shape, tuple) and dtype is not None:
        return {"name": name, "kind": kind, "summary": f"{kind} of shape {shape}, dtype {dtype}",
                "text": _cut(repr(value), TEXT_LIMIT)}
    size = f", {len(value)} items" if isinstance(value, (list, tuple, dict, set)) else ""
    return {"name": name, "kind": kind, "summary": f"{kind}{size}", "text": _cut(repr(value), TEXT_LIMIT)}


def _as_frame(value: Any):
    """A pandas DataFrame (a Series as a one-column frame), or None without importing pandas."""
    pandas = sys.modules.get("pandas")
    if pandas is None:
        return None
    if isinstance(value, pandas.Series):
        return value.to_frame()
    return value if isinstance(value, pandas.DataFrame) else None


def _cut(text: str, limit: int = CELL_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def main() -> int:
    from kale_like.runtime.step_runtime import _kl_load_value

    found = []
    for name, uris in json.load(sys.stdin).items():
        try:
            values = [_kl_load_value(uri) for uri in uris]
        except Exception as error:  # a value that cannot be read back: say so, go on with the others
            found.append({"name": name, "kind": "", "summary": f"cannot be read: {type(error).__name__}: {error}"})
            continue
        found.append(preview(name, values[0] if len(values) == 1 else values))
    json.dump(found, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
