"""The `imports` and `functions` cells, or a module's top level, pruned per step to what that step uses.

Kale prepends these cells whole to every step, so every step installs every package the notebook
imports. Here each top-level statement is analysed once; a step carries only the definitions it
reaches (transitively: a function calling another pulls it in). A statement that defines nothing
runs for its side effect: from notebook cells tagged for every step, in every step
(`np.random.seed(0)`, `warnings.filterwarnings(...)`, as in Kale); from a Python module, whose top
level was written to run once at import, only in the steps that use a constant or helper it changes
(`CONFIG["k"] = 1`, `LABELS.append(...)`) — any other (`print(...)`, `os.system(...)`, `main()`)
runs in no step, and `unused` names it for a warning.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass

from kale_like.errors import KaleLikeError, SourceLocation
from kale_like.frontends.analysis import CodeSyntaxError, analyze, check, constant_facts
from kale_like.graph.model import CodeBlock


@dataclass(frozen=True, slots=True)
class _Statement:
    code: str
    cell_index: int | None
    line: int
    defines: frozenset[str]
    reads: dict[str, tuple[int, int]]
    modules: frozenset[str]
    inert: bool  # a docstring, `pass` or another bare literal: harmless anywhere, nothing to warn about


@dataclass(frozen=True, slots=True)
class Prelude:
    source: str
    statements: tuple[_Statement, ...]
    packages: tuple[str, ...]
    star_import: bool
    side_effects: bool = True  # statements that define nothing run in every step (notebook cells)

    @classmethod
    def from_cells(
        cls, cells, source: str, errors: list[KaleLikeError], packages: tuple[str, ...] = ()
    ) -> Prelude:
        """Analyse each top-level statement of the imports/functions cells."""
        items = []
        for cell, code in cells:
            try:
                module = check(code)
            except CodeSyntaxError as error:
                message, hint = error.described("fix the code so the cell runs in a notebook")
                errors.append(KaleLikeError(message, SourceLocation(source, cell.index, None, error.line, error.column),
                                            hint))
                continue
            line = 1
            for node in module.body:
                text = module.code_for_node(node)
                items.append((text, cell.index, line))
                line += text.count("\n") if text.endswith("\n") else text.count("\n") + 1
        return cls.from_statements(items, source, packages)

    @classmethod
    def from_statements(cls, items, source: str, packages: tuple[str, ...] = (),
                        side_effects: bool = True) -> Prelude:
        """From (code, cell index or None, first line) statements, e.g. a module's top level
        (`side_effects=False`: see the module's docstring)."""
        statements = []
        for text, cell_index, line in items:
            facts = constant_facts(text) or analyze(text)
            statements.append(_Statement(text, cell_index, line, facts.defines, facts.reads, facts.modules,
                                         not facts.defines and _is_inert(text)))
        star = any(analyze(text).star_import for text, _, _ in items if "*" in text)
        return cls(source, tuple(statements), tuple(packages), star, side_effects)

    def _included(self, wanted: set[str]) -> list[_Statement]:
        return [self.statements[i] for i in sorted(self._chosen(wanted))]

    def _chosen(self, wanted: set[str]) -> set[int]:
        needed = set(wanted)
        # what a module-level statement may change for a step: the constants and helpers, not modules
        changeable = set().union(*(s.defines for s in self.statements if not s.modules)) if self.statements else set()
        chosen: set[int] = set()
        changed = True
        while changed:
            changed = False
            for index, statement in enumerate(self.statements):
                if index in chosen:
                    continue
                if statement.defines & needed or (not statement.defines and (
                        self.side_effects or statement.inert or set(statement.reads) & needed & changeable)):
                    chosen.add(index)
                    needed |= set(statement.reads)
                    changed = True
        return chosen

    def unused(self, step_reads: Iterable[set[str]]) -> list[tuple[SourceLocation, str]]:
        """The statements that do something but run in none of the steps (reading `step_reads`,
        one set a step): where each stands, and its first line."""
        if self.side_effects:
            return []
        chosen = set().union(*(self._chosen(reads) for reads in step_reads))
        return [(SourceLocation(self.source, s.cell_index, None, s.line), s.code.strip().splitlines()[0])
                for i, s in enumerate(self.statements) if i not in chosen and not s.defines and not s.inert]

    def external_reads(self, step_reads: set[str], step_defines: frozenset[str]) -> set[str]:
        """Names the step needs from other steps or parameters, prelude included."""
        included = self._included(step_reads)
        defined = set().union(*(s.defines for s in self.statements)) if self.statements else set()
        from_prelude = set().union(*(s.reads for s in included)) if included else set()
        return (set(step_reads) - defined) | (from_prelude - defined - set(step_defines))

    def location_of_read(self, name: str) -> SourceLocation | None:
        for statement in self.statements:
            if name in statement.reads:
                line, column = statement.reads[name]
                return SourceLocation(self.source, statement.cell_index, None, statement.line + line - 1, column)
        return None

    def blocks_for(self, step_reads: set[str]) -> tuple[tuple[CodeBlock, ...], frozenset[str]]:
        """The prelude code a step carries, one block per cell, and the modules it imports."""
        included = self._included(step_reads)
        blocks: list[CodeBlock] = []
        current_cell: int | None = None
        parts: list[str] = []
        for statement in included + [None]:
            if statement is None or statement.cell_index != current_cell:
                if parts:
                    code = "".join(parts)
                    blocks.append(CodeBlock(code, SourceLocation(self.source, current_cell)))
                if statement is None:
                    break
                current_cell, parts = statement.cell_index, []
            parts.append(statement.code if statement.code.endswith("\n") else statement.code + "\n")
        modules = frozenset().union(*(s.modules for s in included)) if included else frozenset()
        return tuple(blocks), modules


def _is_inert(text: str) -> bool:
    try:
        body = ast.parse(text).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return all(isinstance(node, ast.Pass) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
               for node in body)
