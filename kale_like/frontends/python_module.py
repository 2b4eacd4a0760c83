"""A Python file with `@step` / `@pipeline` functions, read statically with libcst.

Nothing of the user's module is imported or run: decorator settings must be literals, the step
functions' source is what the components carry, and the rest of the module (imports, helpers,
constants) is a prelude each step takes only the parts of that it uses.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from kale_like.errors import KaleLikeError, SourceLocation
from kale_like.frontends.analysis import CodeSyntaxError, check
from kale_like.frontends.module_constants import ModuleConstants
from kale_like.frontends.prelude import Prelude
from kale_like.graph.overrides import SERVICE_ACCOUNT_PER_RUN
from kale_like.sdk import PIPELINE_SETTINGS, STEP_SETTINGS
from kale_like.graph.types import TypeName, list_of

SDK_MODULES = ("kale_like", "kale_like.sdk", "kale.sdk", "kale")
KALE_SDK_MODULES = ("kale.sdk", "kale")


@dataclass(frozen=True, slots=True)
class Argument:
    """One parameter of a decorated function."""

    name: str
    annotation: TypeName | None
    default: object
    has_default: bool
    optional_type: TypeName | None = None  # `Optional[str]` / `str | None`: str (the annotation then reads as none)


@dataclass(frozen=True, slots=True)
class Decorated:
    """A `@step` or `@pipeline` function."""

    kind: str
    function: str
    settings: dict
    arguments: tuple[Argument, ...]
    returns: TypeName | None
    node: cst.FunctionDef
    code: str
    location: SourceLocation


@dataclass
class PythonModule:
    path: str
    steps: dict[str, Decorated] = field(default_factory=dict)
    pipelines: dict[str, Decorated] = field(default_factory=dict)
    constants: dict[str, object] = field(default_factory=dict)  # name -> value, as the module's statements make it
    changed: dict[str, int] = field(default_factory=dict)  # name -> line of a change whose value is unknown
    prelude: Prelude | None = None
    positions: dict = field(default_factory=dict)
    locate: Callable[[int, int], SourceLocation] | None = None  # (line, column) -> SourceLocation, for code
    # that came from notebook cells

    def where(self, node: cst.CSTNode) -> SourceLocation:
        position = self.positions.get(node)
        if position is None:
            return SourceLocation(self.path)
        if self.locate is not None:
            return self.locate(position.start.line, position.start.column + 1)
        return SourceLocation(self.path, line=position.start.line, column=position.start.column + 1)


def read_module(path: str | Path, errors: list[KaleLikeError], text: str | None = None,
                locate=None) -> PythonModule:
    """Scan a module's top level; problems go to `errors`.

    `text` and `locate` let notebook cells be read as one module while errors still name cells.
    """
    source = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KaleLikeError("file not found", SourceLocation(source), "check the path") from None
        except (OSError, UnicodeDecodeError) as error:
            raise KaleLikeError(f"cannot read the file: {error}", SourceLocation(source)) from None
    try:
        module = check(text)
    except CodeSyntaxError as error:
        where = locate(error.line, error.column) if locate else SourceLocation(source, line=error.line,
                                                                                column=error.column)
        message, hint = error.described("")
        raise KaleLikeError(message, where, hint) from None
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    result = PythonModule(source, positions=dict(wrapper.resolve(PositionProvider)), locate=locate)
    known = ModuleConstants(result.constants, result.changed)
    prelude_items = []
    for statement in module.body:
        decorated = _decorated(statement, module, result, errors)
        if decorated is not None:
            table = result.steps if decorated.kind == "step" else result.pipelines
            table[decorated.function] = decorated
            if decorated.kind == "step":  # a step may call another step's function: a plain call, as in Python
                prelude_items.append((decorated.code, None, result.positions[statement].start.line))
            continue
        # Kale's SDK imports mean nothing in a step; kale_like's are served there by the step runtime
        # (`parallel_map` used in a step needs its import in the step's prelude)
        if _is_sdk_import(statement, KALE_SDK_MODULES) or _is_main_block(statement):
            continue
        position = result.positions[statement].start.line
        known.read(module.code_for_node(statement), position)
        prelude_items.append((module.code_for_node(statement), None, position))
    result.prelude = Prelude.from_statements(prelude_items, source, side_effects=False)
    return result


def _decorated(statement, module: cst.Module, result: PythonModule, errors: list) -> Decorated | None:
    if not isinstance(statement, cst.FunctionDef):
        return None
    for decorator in statement.decorators:
        kind, settings_node = _sdk_decorator(decorator.decorator)
        if kind is None:
            continue
        where = result.where(statement)
        settings = _settings(settings_node, kind, result, errors)
        if len(statement.decorators) > 1:
            errors.append(KaleLikeError(f"@{kind} function '{statement.name.value}' has other decorators", where,
                                        "a step's source is shipped as is; remove the other decorators"))
        bare = statement.with_changes(decorators=[], leading_lines=[])
        return Decorated(
            kind=kind,
            function=statement.name.value,
            settings=settings,
            arguments=_arguments(statement, result, errors, result.constants),
            returns=_annotation(statement.returns.annotation) if statement.returns else None,
            node=statement,
            code=module.code_for_node(bare),
            location=where,
        )
    return None


def _sdk_decorator(expression: cst.BaseExpression):
    call = expression if isinstance(expression, cst.Call) else None
    target = call.func if call else expression
    name = target.value if isinstance(target, cst.Name) else target.attr.value if isinstance(target, cst.Attribute) else None
    if name in ("step", "pipeline"):
        return name, call
    return None, None


def _settings(call: cst.Call | None, kind: str, result: PythonModule, errors: list) -> dict:
    if call is None:
        return {}
    allowed = STEP_SETTINGS if kind == "step" else PIPELINE_SETTINGS
    settings = {}
    for argument in call.args:
        where = result.where(argument)
        if argument.keyword is None:
            errors.append(KaleLikeError(f"@{kind} takes settings as keywords only", where, f"e.g. @{kind}(name=...)"))
            continue
        key = argument.keyword.value
        if key == "service_account" and kind == "step":
            errors.append(KaleLikeError(f"@step(service_account=...): {SERVICE_ACCOUNT_PER_RUN[0]}", where,
                                        SERVICE_ACCOUNT_PER_RUN[1]))
            continue
        if key not in allowed:
            errors.append(KaleLikeError(f"@{kind} has no setting '{key}'", where, "settings: " + ", ".join(allowed)))
            continue
        if key == "on_exit" and isinstance(argument.value, cst.Name):
            settings[key] = argument.value.value  # the exit step, by function name
            continue
        try:
            settings[key] = ast.literal_eval(cst.Module([]).code_for_node(argument.value).strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            errors.append(KaleLikeError(f"@{kind}({key}=...) must be a literal value", where,
                                        "settings are read without running the module"))
    return settings


def _arguments(function: cst.FunctionDef, result: PythonModule, errors: list, constants: dict) -> tuple[Argument, ...]:
    parameters = function.params
    if parameters.star_arg not in (None, cst.MaybeSentinel.DEFAULT) or parameters.star_kwarg is not None:
        if not isinstance(parameters.star_arg, cst.ParamStar):
            errors.append(KaleLikeError(f"'{function.name.value}' takes *args or **kwargs", result.where(function),
                                        "name every parameter a step or pipeline receives"))
    arguments = []
    for parameter in (*parameters.posonly_params, *parameters.params, *parameters.kwonly_params):
        default, has_default = None, parameter.default is not None
        if has_default and isinstance(parameter.default, cst.Name) and parameter.default.value in constants:
            default = constants[parameter.default.value]
        elif parameter.default is not None:  # has_default
            try:
                default = ast.literal_eval(cst.Module([]).code_for_node(parameter.default).strip())
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                errors.append(KaleLikeError(
                    f"the default of '{parameter.name.value}' must be a literal value", result.where(parameter),
                    "defaults are read without running the module"))
        annotation = _annotation(parameter.annotation.annotation) if parameter.annotation else None
        optional = _optional_type(parameter.annotation.annotation) if parameter.annotation else None
        arguments.append(Argument(parameter.name.value, annotation, default, has_default, optional))
    return tuple(arguments)


_SIMPLE: dict[str, TypeName] = {"int": "int", "float": "float", "str": "str", "bool": "bool", "list": "list", "dict": "dict",
           "List": "list", "Dict": "dict"}


def _annotation(node: cst.BaseExpression) -> TypeName | None:
    """Our type name for an annotation: int, float, str, bool, list, list:int, dict; else None."""
    if isinstance(node, cst.Name):
        return _SIMPLE.get(node.value)
    if isinstance(node, cst.Attribute):
        return _SIMPLE.get(node.attr.value)
    if isinstance(node, cst.Subscript):
        outer = _annotation(node.value)
        if outer == "list" and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
            inner = _annotation(node.slice[0].slice.value)
            return list_of(inner or "")
        return outer
    if isinstance(node, cst.SimpleString):
        try:
            return _annotation(cst.parse_expression(ast.literal_eval(node.value)))
        except Exception:  # a string annotation that is not an expression
            return None
    return None


def _optional_type(node: cst.BaseExpression) -> TypeName | None:
    """The type `Optional[str]` or `str | None` allows besides None (`str`); None for other annotations.
    (A value that may be None has no KFP parameter type: such an annotation reads as no type.)"""
    if isinstance(node, cst.SimpleString):
        try:
            return _optional_type(cst.parse_expression(ast.literal_eval(node.value)))
        except Exception:  # a string annotation that is not an expression
            return None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
        sides = [side for side in (node.left, node.right) if not (isinstance(side, cst.Name) and side.value == "None")]
        return _annotation(sides[0]) if len(sides) == 1 else None
    if isinstance(node, cst.Subscript) and _annotation_name(node.value) == "Optional" and len(node.slice) == 1 \
            and isinstance(node.slice[0].slice, cst.Index):
        return _annotation(node.slice[0].slice.value)
    return None


def _annotation_name(node: cst.BaseExpression) -> str:
    """`Optional` for `Optional` and `typing.Optional`."""
    if isinstance(node, cst.Name):
        return node.value
    return node.attr.value if isinstance(node, cst.Attribute) else ""


def _is_sdk_import(statement, modules: tuple[str, ...] = SDK_MODULES) -> bool:
    if not isinstance(statement, cst.SimpleStatementLine):
        return False
    for small in statement.body:
        if isinstance(small, cst.ImportFrom) and small.module is not None and not small.relative:
            if cst.Module([]).code_for_node(small.module) in modules:
                return True
        if isinstance(small, cst.Import):
            names = [cst.Module([]).code_for_node(alias.name) for alias in small.names]
            if names and all(name in modules for name in names):
                return True
    return False


def _is_main_block(statement) -> bool:
    if not isinstance(statement, cst.If):
        return False
    text = cst.Module([]).code_for_node(statement.test).replace("'", '"').replace(" ", "")
    return text in ('__name__=="__main__"', '"__main__"==__name__')

