"""Names in the generated DSL module: valid, readable, and never colliding."""

from __future__ import annotations

import keyword
import re

# Names the generated module itself uses at module level.
MODULE_NAMES = frozenset({"dsl", "compiler", "kubernetes", "Input", "Output", "Dataset", "Metrics", "Model",
                          "Artifact", "typing", "os", "List", "NamedTuple", "pipeline", "_kl_stable_header", "_kl_yaml", "_kl_yaml_text", "_kl_libyaml",
                          "_path", "_text", "_file"})
RESERVED_ARGUMENTS = frozenset({"metrics", "executor_input"})


def python_identifier(name: str, taken: set[str]) -> str:
    """A Python identifier for `name`, suffixed if it is a keyword or already taken."""
    candidate = re.sub(r"\W", "_", name) or "_"
    if candidate[0].isdigit():
        candidate = "_" + candidate
    if not any(ch.isalnum() for ch in candidate):
        candidate = "step" + candidate  # kfp derives task names from the letters and digits
    base = candidate
    counter = 1
    while keyword.iskeyword(candidate) or candidate in taken or candidate in MODULE_NAMES:
        candidate = f"{base}_{counter}" if counter > 1 else f"{base}_step"
        counter += 1
    taken.add(candidate)
    return candidate


def kfp_name(variable: str) -> str:
    """A name KFP accepts for an input or output: an ASCII letter first, then letters, digits, `_`."""
    candidate = re.sub(r"[^A-Za-z0-9_]", "_", variable.encode("ascii", "replace").decode().replace("?", "_"))
    candidate = candidate.lstrip("_0123456789") or "value"
    return candidate if candidate == variable else f"{candidate}_"


def input_argument(variable: str, taken: set[str]) -> str:
    """The component argument for an input variable (a valid, unused KFP name)."""
    base = kfp_name(variable)
    candidate, counter = base, 2
    while candidate in taken or candidate in RESERVED_ARGUMENTS or keyword.iskeyword(candidate):
        candidate, counter = f"{base}{counter}", counter + 1
    taken.add(candidate)
    return candidate


def output_argument(variable: str, taken: set[str]) -> str:
    """The component argument for an output variable (distinct from inputs of the same name)."""
    base = kfp_name(variable)
    candidate = base
    counter = 1
    while candidate in taken or candidate in RESERVED_ARGUMENTS:
        candidate = f"{base}_out" if counter == 1 else f"{base}_out{counter}"
        counter += 1
    taken.add(candidate)
    return candidate


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")  # the characters below 32 other than tab and newline


def python_string(text: str) -> str:
    """A readable literal for embedded code: a raw triple-quoted block when that is exact."""
    safe = (
        "'''" not in text
        and text.endswith("\n")
        and _CONTROL.search(text) is None
        and "\\\n" not in text
    )
    return f"r'''{text}'''" if safe else repr(text)
