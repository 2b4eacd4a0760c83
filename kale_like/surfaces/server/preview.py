"""Previews of a step's outputs for the panel: a DataFrame's head as a table, an array's shape and
dtype, a plot or an image as the picture, any other value's text, each cut short.

`python -m kale_like.surfaces.server.preview` reads `{"NAME": [URI, ...]}` on stdin and prints
`[{"name", "kind", "summary", "columns"?, "rows"?, "text"?, "image"?}, ...]` (`image`: a data URL).
It runs in a process of its own: reading a stored value may unpickle the user's objects (and import
pandas, matplotlib or their modules), which the Jupyter server's process should neither do nor wait on.

Pictures: a matplotlib figure (or anything with its `figure`, such as an Axes or a seaborn grid), a
PIL image, PNG/JPEG/GIF bytes, or the name of an image file a step saved (`chart = "roc.png"` after
`plt.savefig("roc.png")`), relative to the notebook's folder and inside it.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

HEAD_ROWS = 8
TEXT_LIMIT = 2000
CELL_LIMIT = 60
IMAGE_LIMIT = 4 * 1024 * 1024  # bytes of a picture shown in the panel
FIGURE_DPI = 80
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".svg": "image/svg+xml", ".webp": "image/webp"}


def image_bytes(data: bytes) -> tuple[str, str] | None:
    """(media type, size text) of PNG, JPEG or GIF bytes; None for other bytes."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return "image/png", f"{int.from_bytes(data[16:20], 'big')}×{int.from_bytes(data[20:24], 'big')} px"
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return "image/gif", f"{int.from_bytes(data[6:8], 'little')}×{int.from_bytes(data[8:10], 'little')} px"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg", ""
    return None


def picture(name: str, kind: str, data: bytes, media: str, size: str, what: str) -> dict:
    """A preview that is a picture (or says why it is not shown: too large)."""
    summary = f"{what}{', ' + size if size else ''}"
    if len(data) > IMAGE_LIMIT:
        return {"name": name, "kind": kind, "summary": f"{summary}: {len(data) // 1024} KiB, too large to show here"}
    return {"name": name, "kind": kind, "summary": summary,
            "image": f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"}


def image_file(name: str, value: str, folder: Path) -> dict | None:
    """The preview of an image file a step saved and named in `value` (relative to the notebook's
    `folder`, inside it); None when `value` names no such file."""
    media = IMAGE_TYPES.get(Path(value).suffix.lower()) if len(value) < 500 and "\0" not in value else None
    if media is None or Path(value).is_absolute():
        return None
    base = Path(os.path.realpath(folder))
    path = Path(os.path.realpath(base / value))
    if base not in path.parents or not path.is_file():
        return None
    if path.stat().st_size > IMAGE_LIMIT:
        return {"name": name, "kind": "str", "summary": f"image file {value}: too large to show here",
                "text": repr(value)}
    data = path.read_bytes()
    size = (image_bytes(data) or ("", ""))[1]
    return picture(name, "str", data, media, size, f"image file {value}")


def _figure(value: Any):
    """A matplotlib figure of `value` (the value, or its `figure` such as an Axes'), or None."""
    if "matplotlib" not in sys.modules:
        return None
    from matplotlib.figure import Figure

    for candidate in (value, getattr(value, "figure", None), getattr(value, "fig", None)):
        if isinstance(candidate, Figure):
            return candidate
    return None


def _picture_of(name: str, value: Any) -> dict | None:
    kind = type(value).__name__
    if isinstance(value, (bytes, bytearray)):
        found = image_bytes(bytes(value))
        return picture(name, kind, bytes(value), found[0], found[1], found[0].split("/")[1].upper() + " image") \
            if found else None
    figure = _figure(value)
    if figure is not None:
        import io

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
        data = buffer.getvalue()
        return picture(name, kind, data, "image/png", (image_bytes(data) or ("", ""))[1], f"{kind} (matplotlib)")
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(value, pil.Image):
        import io

        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return picture(name, kind, buffer.getvalue(), "image/png", f"{value.width}×{value.height} px", "PIL image")
    if isinstance(value, str):
        return image_file(name, value, Path.cwd())
    return None


def preview(name: str, value: Any) -> dict:
    """What the panel shows of one value."""
    kind = type(value).__name__
    shown = _picture_of(name, value)
    if shown is not None:
        return shown
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
    os.environ.setdefault("MPLBACKEND", "Agg")  # a figure is drawn to PNG here, never on a screen
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
