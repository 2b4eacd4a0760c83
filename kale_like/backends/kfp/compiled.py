"""What a compile gives: the IR YAML and the DSL module (apart from compile.py, which imports kfp)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CompiledPipeline:
    """The compiled IR and the DSL module it came from."""

    yaml_text: str
    dsl_source: str
