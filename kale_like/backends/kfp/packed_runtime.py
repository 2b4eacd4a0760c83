"""The step runtime as a component carries it: only the functions the step can call, compressed.

Every component used to embed the whole runtime (`kale_like/runtime/step_runtime.py`, ~12 KB once
indented) as plain source: 150 distinct steps made 1.9 MB of the 2.85 MB YAML, and the Argo
Workflow the KFP backend builds holds each component's program once more. Measured on the runtime
as of this module (bytes of source as packed: no docstrings, comments or blank lines, one space
an indentation level / raw deflate):

| part | functions | source | packed | a step needs it when |
|---|---|---|---|---|
| run | `_kl_run_step`, `_kl_run_step_body`, `_kl_exec`, `_kl_display` | 2,997 | 991 | always |
| flags | `_kl_stand_still`, `_kl_read_flags` | 842 | 401 | it lies in a loop that may run on a filler item (lowering/empty_loops.py) |
| metrics | `_kl_log_metrics` | 359 | 202 | it logs metrics |
| span | `_kl_span` | 1,163 | 502 | its image may have the OpenTelemetry SDK (not a stock `python:` image, or it installs it) |
| coerce | `_kl_coerce` | 942 | 347 | it reads parameters or returns typed values |
| load | `_kl_load_value` | 729 | 354 | it reads artifacts |
| save | `_kl_save_value`, `_kl_is_json_exact` | 1,741 | 694 | it writes artifacts |
| sdk | `_kl_provide_sdk`, `_kl_parallel_map`, `_kl_apply_forked` | 1,900 | 761 | its code mentions kale_like |

The parts a step needs are compressed (raw deflate) and base64-encoded (base64 rather than a
denser alphabet because JSON escapes `<`, `>` and `&`, and the Workflow stores the program as JSON
inside JSON): a typical notebook step (run, coerce, load, save) carries 2,712 characters instead of
~12,400, a code-built step that only returns a value 1,672; what is left of its program is the
step's own code. The component unpacks the runtime into a module once per process (`sys.modules`),
so the local runner can provide it compiled beforehand (`kale_like/backends/local/programs.py`
reads the name and the blob back with `RUNTIME_PATTERN`). A runtime function no part lists travels
with every step.
"""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import io
import json
import re
import tokenize
import zlib
from dataclasses import dataclass
from pathlib import Path

from kale_like.user_cache import cache_folder, keep

RUNTIME_MARKER = "# --- embedded runtime below: keep self-contained ---\n"
PARTS: dict[str, tuple[str, ...]] = {
    "run": ("_kl_run_step", "_kl_run_step_body", "_kl_exec", "_kl_display"),
    "flags": ("_kl_stand_still", "_kl_read_flags"),
    "metrics": ("_kl_log_metrics",),
    "span": ("_kl_span",),
    "coerce": ("_kl_coerce",),
    "load": ("_kl_load_value",),
    "save": ("_kl_save_value", "_kl_is_json_exact"),
    "sdk": ("_kl_provide_sdk", "_kl_parallel_map", "_kl_apply_forked"),
}
ALWAYS = frozenset({"run"})  # and every runtime function no part lists
# how the unpacking lines of a component name the runtime module and hold its compressed source
RUNTIME_PATTERN = re.compile(r"_kl_name = '(kale_like_runtime_[0-9a-f]{16})'.*?b64decode\(\s*'([A-Za-z0-9+/=]+)'",
                             re.DOTALL)


@dataclass(frozen=True, slots=True)
class PackedRuntime:
    """The runtime functions of some parts: their source, and how a component carries them."""

    parts: tuple[str, ...]
    source: str  # plain Python: the functions, docstrings and comment lines left out
    name: str  # the module a component unpacks them into (named by the source's hash)
    blob: str  # base64 of the zlib-compressed source


def runtime_text() -> str:
    """Everything below the runtime module's marker line (what every step may run)."""
    text = (Path(__file__).parents[2] / "runtime" / "step_runtime.py").read_text(encoding="utf-8")
    return text.split(RUNTIME_MARKER, 1)[1]


@functools.lru_cache(maxsize=64)
def packed_runtime(parts: frozenset[str]) -> PackedRuntime:
    """The runtime for a step that needs `parts` (the parts in ALWAYS are added)."""
    chosen = tuple(name for name in PARTS if name in parts | ALWAYS)
    functions = _runtime_functions()
    listed = {function for functions in PARTS.values() for function in functions}
    unlisted = set(functions) - listed  # always carried
    wanted = {function for name in chosen for function in PARTS[name]} | unlisted
    source = _functions_source(functions, wanted)
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: no header or checksum to carry
    blob = base64.b64encode(packer.compress(source.encode("utf-8")) + packer.flush()).decode("ascii")
    return PackedRuntime(chosen, source, f"kale_like_runtime_{digest}", blob)


def unpack(blob: str) -> str:
    """The runtime source a component's blob holds."""
    return zlib.decompress(base64.b64decode(blob), -15).decode("utf-8")


def unpacking_lines(runtime: PackedRuntime, indent: str = "    ") -> list[str]:
    """The component lines that make `_kl` the runtime module: unpacked on first use in a process."""
    return [
        f"{indent}_kl_name = {runtime.name!r}  # kale_like/runtime/step_runtime.py: {', '.join(runtime.parts)}",
        f"{indent}_kl = __import__('sys').modules.setdefault(_kl_name, __import__('types').ModuleType(_kl_name))",
        f"{indent}if not hasattr(_kl, '_kl_run_step'):  # builtins' exec: a step's argument may be named exec",
        f"{indent}    __import__('builtins').exec(__import__('zlib').decompress(__import__('base64').b64decode(",
        f"{indent}        {runtime.blob!r}), -15), _kl.__dict__)",
    ]


@functools.lru_cache(maxsize=1)
def _runtime_functions() -> dict[str, tuple[str, ...]]:
    """Each top-level function of the runtime, in file order, as a component carries it: without
    docstrings, comments and blank lines, indented by one space a level. Read once a process (the
    packings of several sets of parts share it), and kept in the user's cache folder, keyed by the
    runtime's source and this module's, for the next process (cutting them out costs ~13 ms)."""
    text = runtime_text()
    folder = cache_folder()
    key = hashlib.sha256((text + "\0" + Path(__file__).read_text(encoding="utf-8")).encode("utf-8")).hexdigest()
    kept_path = folder / f"runtime-functions-{key[:24]}.json" if folder is not None else None
    if kept_path is not None:
        try:
            kept = json.loads(kept_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            kept = None  # not kept yet (or unreadable): cut them out again
        if isinstance(kept, dict) and all(isinstance(lines, list) and all(isinstance(line, str) for line in lines)
                                          for lines in kept.values()):
            return {str(name): tuple(lines) for name, lines in kept.items()}
    functions = _cut_out_functions(text)
    if kept_path is not None:
        keep(kept_path, json.dumps(functions).encode("utf-8"))
    return functions


def _cut_out_functions(text: str) -> dict[str, tuple[str, ...]]:
    lines = _without_comments(text).split("\n")
    tree = ast.parse(text)
    functions: dict[str, tuple[str, ...]] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        skip: set[int] = set()
        for inner in ast.walk(node):
            body = getattr(inner, "body", None)
            if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body \
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                skip.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
        kept: list[str] = []
        first = node.lineno - len(node.decorator_list)
        for number in range(first, (node.end_lineno or node.lineno) + 1):
            line = lines[number - 1]
            if number in skip or not line.strip():
                continue
            stripped = line.lstrip(" ")
            kept.append(" " * ((len(line) - len(stripped)) // 4) + stripped)  # the runtime indents by 4
        functions[node.name] = tuple(kept)
    return functions


def _functions_source(functions: dict[str, tuple[str, ...]], wanted: set[str]) -> str:
    """The `functions` named in `wanted`, in file order (the line numbers of tracebacks are the
    unpacked module's own)."""
    missing = wanted - set(functions)
    if missing:
        raise ValueError(f"the step runtime has no function {', '.join(sorted(missing))}")
    return "\n".join(line for name, lines in functions.items() if name in wanted for line in lines) + "\n"


def _without_comments(text: str) -> str:
    """`text` with its comments blanked out (same lines; strings untouched)."""
    lines = text.split("\n")
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            row, column = token.start
            lines[row - 1] = lines[row - 1][:column].rstrip()
    return "\n".join(lines)
