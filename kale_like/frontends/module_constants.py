"""The module-level constants a pipeline body reads, with the values Python gives them.

A pipeline file is compiled without being imported, so a body reading `SEEDS` gets the value the
module's statements give `SEEDS`, worked out from the source: a literal (`SEEDS = [1, 2, 3]`), a
pure expression over earlier constants (`NAMES = [f"m{i}" for i in SEEDS]`, `SEEDS = list(range(3))`)
and changes to it that use only such values (`SEEDS.append(4)`, `CONFIG["lr"] = 0.5`, `SEEDS += [5]`),
each evaluated now on a copy, with the builtins a pipeline body may call and nothing else.

A statement that changes a constant in any other way (`SEEDS.extend(load())`, a loop appending to
it, `SEEDS = read_seeds()`) leaves its value unknown: the name is then reported as changed, and a
body reading it is refused rather than given a value Python would not have.
"""

from __future__ import annotations

import ast
import builtins
import copy
from dataclasses import dataclass, field

from kale_like.frontends.pipeline_expressions import BUILTINS, impurity

# methods that change a list, dict or set in place
_MUTATORS = frozenset({"append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse", "update",
                       "setdefault", "popitem", "add", "discard"})
_LARGEST_RANGE = 100_000


@dataclass
class ModuleConstants:
    """The constants known after each statement, and the names whose value became unknown (-> line)."""

    values: dict[str, object] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)

    def read(self, statement: str, line: int) -> None:
        """Take one module-level statement (its source text) into account."""
        try:
            tree = ast.parse(statement)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return
        if len(tree.body) != 1:
            return
        node = tree.body[0]
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and _single_name(node):
            name = _single_name(node)
            assert name is not None and node.value is not None
            self._set(name, node.value, line)
            return
        touched = _names_changed(node) & (set(self.values) | set(self.changed))
        if not touched:
            return
        if isinstance(node, (ast.Expr, ast.Assign, ast.AugAssign)) and len(touched) == 1 and self._pure_change(node):
            name = next(iter(touched))
            if name in self.values and self._apply(statement, name):
                return
        for name in touched:
            self._unknown(name, line)

    def _set(self, name: str, value: ast.expr, line: int) -> None:
        try:
            self.values[name] = ast.literal_eval(value)
            self.changed.pop(name, None)
            return
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
        if self._computable(value):
            ok, result = _evaluate(ast.Expression(value), self.values)
            if ok:
                self.values[name] = result
                self.changed.pop(name, None)
                return
        self._unknown(name, line)

    def _unknown(self, name: str, line: int) -> None:
        self.values.pop(name, None)
        self.changed[name] = line

    def _computable(self, value: ast.expr) -> bool:
        """Pure, reading only known constants and builtins, and quick to evaluate now."""
        expression = ast.Expression(value)
        if impurity(expression) is not None:
            return False
        reads = {n.id for n in ast.walk(value) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        bound = {n.id for n in ast.walk(value) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        if not reads - bound <= set(self.values) | BUILTINS:
            return False
        for node in ast.walk(value):
            if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Pow, ast.LShift)):
                return False  # `2 ** 10 ** 9` is Python too, but not for now
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) \
                    and not any(_small_count(side) for side in (node.left, node.right)):
                return False  # `"x" * n`: only with a literal count, so the value stays small
        return True

    def _pure_change(self, node: ast.stmt) -> bool:
        """`NAME.append(v)`, `NAME[k] = v`, `NAME += v` with every value computable."""
        if isinstance(node, ast.Expr):
            call = node.value
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and isinstance(call.func.value, ast.Name) and call.func.attr in _MUTATORS):
                return False
            parts = list(call.args) + [k.value for k in call.keywords]
        elif isinstance(node, ast.Assign):
            target = node.targets[0]
            if len(node.targets) != 1 or not (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)):
                return False
            parts = [target.slice, node.value]
        else:
            assert isinstance(node, ast.AugAssign)
            if not isinstance(node.target, (ast.Name, ast.Subscript)):
                return False
            parts = [node.value] + ([node.target.slice] if isinstance(node.target, ast.Subscript) else [])
        return all(self._computable(part) for part in parts)

    def _apply(self, statement: str, name: str) -> bool:
        namespace = {**{k: copy.deepcopy(v) for k, v in self.values.items()}, "__builtins__": _allowed()}
        try:
            exec(compile(statement, "<module constant>", "exec"), namespace)  # noqa: S102 - checked pure above
        except Exception:  # noqa: BLE001 - raises when the module runs too; the value is then unknown
            return False
        self.values[name] = namespace[name]
        return True


def _small_count(node: ast.expr) -> bool:
    """An int literal small enough to repeat a sequence by (`[1, 2] * 2`, `"ab" * 3`)."""
    return isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) <= 10_000


def _single_name(node: ast.Assign | ast.AnnAssign) -> str | None:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if len(targets) == 1 and isinstance(targets[0], ast.Name) and node.value is not None:
        return targets[0].id
    return None


def _names_changed(node: ast.stmt) -> set[str]:
    """Names the statement rebinds or may change in place (a method that changes its object, an item
    or attribute assigned, `del`), anywhere in it."""
    names: set[str] = set()
    for part in ast.walk(node):
        if isinstance(part, ast.Name) and isinstance(part.ctx, (ast.Store, ast.Del)):
            names.add(part.id)
        elif isinstance(part, (ast.Subscript, ast.Attribute)) and isinstance(part.ctx, (ast.Store, ast.Del)):
            root = part.value
            while isinstance(root, (ast.Subscript, ast.Attribute)):
                root = root.value
            if isinstance(root, ast.Name):
                names.add(root.id)
        elif isinstance(part, ast.Call) and isinstance(part.func, ast.Attribute) and part.func.attr in _MUTATORS:
            root = part.func.value
            while isinstance(root, (ast.Subscript, ast.Attribute)):
                root = root.value
            if isinstance(root, ast.Name):
                names.add(root.id)
    return names


def _small_range(*arguments: int) -> range:
    made = range(*arguments)
    if len(made) > _LARGEST_RANGE:
        raise ValueError("too long to list while compiling")
    return made


def _allowed() -> dict[str, object]:
    allowed: dict[str, object] = {name: getattr(builtins, name) for name in BUILTINS if hasattr(builtins, name)}
    allowed["range"] = _small_range
    return allowed


def _evaluate(expression: ast.Expression, constants: dict[str, object]) -> tuple[bool, object]:
    namespace = {**{k: copy.deepcopy(v) for k, v in constants.items()}, "__builtins__": _allowed()}
    try:
        return True, eval(compile(expression, "<module constant>", "eval"), namespace)  # noqa: S307 - pure
    except Exception:  # noqa: BLE001 - raises when the module runs too; the value is then unknown
        return False, None
