"""Pipelines built in code (`Pipeline().add_step(fn, params=...)`): Python functions -> steps.

The functions already exist as objects, so what a step needs is read from them: the function's
source (inspect), its free names resolved through its globals — a module becomes an import, a
helper function or class from the same file travels as source, a plain constant as its literal.
Everything else is refused with the function and the name that cannot travel.
"""

from __future__ import annotations

import builtins
import inspect
import json
import textwrap
import types
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import libcst as cst

from kale_like.errors import KaleLikeError, SourceLocation
from kale_like.frontends.analysis import CodeSyntaxError, analyze, parse
from kale_like.frontends.packages import distributions_for
from kale_like.frontends.pipeline_values import type_of_value
from kale_like.frontends.settings import step_settings_from
from kale_like.graph.model import ANY, CodeBlock, Input, Output, Ref, Step

RESULT = "result"


def function_source(fn: Callable) -> tuple[str, SourceLocation]:
    """The function's definition without decorators, and where it is."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        path = inspect.getsourcefile(fn) or "<unknown>"
        line = inspect.getsourcelines(fn)[1]
    except (OSError, TypeError):
        raise KaleLikeError(f"cannot read the source of {getattr(fn, '__name__', fn)!r}", None,
                            "define step functions in a file or a notebook cell, not with exec or a lambda") from None
    where = SourceLocation(path, line=line)
    try:
        module = parse(source)
    except CodeSyntaxError as error:
        raise KaleLikeError(f"cannot parse the source of '{fn.__name__}': {error.message}",
                            SourceLocation(path, line=line + error.line - 1)) from None
    definition = next((n for n in module.body if isinstance(n, cst.FunctionDef)), None)
    if definition is None:
        raise KaleLikeError(f"'{fn.__name__}' is not defined with def", where, "use a def function as a step")
    bare = definition.with_changes(decorators=[], leading_lines=[])
    return cst.Module([]).code_for_node(bare), where


def function_step(fn: Callable, name: str, params: dict[str, Any], after: tuple[str, ...],
                  earlier: dict[str, str]) -> Step:
    """A step running `fn(**arguments)`; parameters named like an earlier step take its result."""
    code, where = function_source(fn)
    signature = inspect.signature(fn)
    unknown = sorted(set(params) - set(signature.parameters))
    if unknown:
        raise KaleLikeError(f"'{fn.__name__}' has no parameter {', '.join(unknown)}", where,
                            f"its parameters: {', '.join(signature.parameters) or 'none'}")
    inputs = []
    for parameter in signature.parameters.values():
        if parameter.name in params:
            value = params[parameter.name]
            _check_constant(value, parameter.name, fn, where)
            inputs.append(Input(parameter.name, Ref("constant", value=value), type_of_value(value)))
        elif parameter.name in earlier:
            inputs.append(Input(parameter.name, Ref("task", earlier[parameter.name], RESULT)))
        elif parameter.default is inspect.Parameter.empty:
            raise KaleLikeError(f"step '{name}': parameter '{parameter.name}' of '{fn.__name__}' gets no value",
                                where, "pass it in params=, or name an earlier step after it")
    try:
        facts = analyze(code)
    except CodeSyntaxError as error:
        raise KaleLikeError(f"cannot analyse '{fn.__name__}': {error.message}", where) from None
    prelude, modules = _prelude(fn, set(facts.reads) - set(signature.parameters), where, set())
    errors: list[KaleLikeError] = []
    settings = step_settings_from(getattr(fn, "__kale_like_step__", {}), where, errors)
    if errors:
        raise errors[0]
    call = f"{RESULT} = {fn.__name__}(" + ", ".join(f"{i.name}={i.name}" for i in inputs) + ")\n"
    packages = set(distributions_for(facts.modules | modules)) | set(settings.extra_packages)
    return Step(
        name=name,
        code=(CodeBlock(code, where), CodeBlock(call, where)),
        location=where,
        prelude=(CodeBlock(prelude, where),) if prelude else (),
        inputs=tuple(inputs),
        outputs=(Output(RESULT, ANY),),
        packages=tuple(sorted(packages)),
        after=after,
        settings=replace(settings, extra_packages=()),
        function=fn.__name__,
    )


def _check_constant(value: Any, name: str, fn: Callable, where: SourceLocation) -> None:
    try:
        ok = json.loads(json.dumps(value)) == value and value is not None
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise KaleLikeError(f"params['{name}'] for '{fn.__name__}' is not a JSON value KFP can pass: {value!r}",
                            where, "pass numbers, strings, bools, lists or dicts")


def _prelude(fn: Callable, names: set[str], where: SourceLocation, seen: set[str]) -> tuple[str, frozenset[str]]:
    """Source that binds the free names of `fn` in a fresh namespace, and the modules it imports."""
    scope = dict(fn.__globals__)
    if fn.__closure__:
        scope.update(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__)))
    lines: list[str] = []
    modules: set[str] = set()
    for name in sorted(names):
        if name in seen or (name not in scope and hasattr(builtins, name)):
            continue
        seen.add(name)
        if name not in scope:
            raise KaleLikeError(f"'{fn.__name__}' uses '{name}', which is not defined", where)
        value = scope[name]
        if isinstance(value, types.ModuleType):
            modules.add(value.__name__.split(".")[0])
            lines.append(f"import {value.__name__}" if value.__name__ == name else f"import {value.__name__} as {name}")
        elif inspect.isfunction(value) or inspect.isclass(value):
            home = getattr(value, "__module__", "")
            same_file = _same_file(value, fn)
            if same_file or home == "__main__":
                code, _ = function_source(value) if inspect.isfunction(value) else (
                    textwrap.dedent(inspect.getsource(value)), None)
                inner = analyze(code)
                more, more_modules = _prelude(value, set(inner.reads), where, seen) if inspect.isfunction(value) \
                    else ("", frozenset())
                lines += [more] if more else []
                modules |= set(more_modules) | set(inner.modules)
                lines.append(code.rstrip("\n"))
            else:
                modules.add(home.split(".")[0])
                lines.append(f"from {home} import {value.__qualname__} as {name}")
        elif _is_literal(value):
            lines.append(f"{name} = {value!r}")
        else:
            raise KaleLikeError(f"'{fn.__name__}' uses '{name}' (a {type(value).__name__}), which cannot be "
                                "carried into a step", where, "create it inside the function, or pass it in params=")
    return "\n".join(lines) + ("\n" if lines else ""), frozenset(modules)


def _same_file(value: Any, fn: Callable) -> bool:
    try:
        return Path(inspect.getsourcefile(value) or "").resolve() == Path(inspect.getsourcefile(fn) or "").resolve()
    except TypeError:
        return False


def _is_literal(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(_is_literal(k) and _is_literal(v) for k, v in value.items())
    return False
