"""The types of the values a step graph carries, written as short names.

A type is a name the graph stores as it is (in JSON, in goldens, in the step runtime's `types=`):

- `int`, `float`, `str`, `bool`, `list`, `dict`: a KFP parameter of that type;
- `list:<scalar>` (`list:int`): a list whose elements are all of that scalar type;
- `any`: a value of unknown type, which travels as a serialised artifact;
- `json`, `json:<declared>` (`json:int`): a value of unknown type carried as its JSON text in a
  string parameter, decoded by the step (then given the declared type).

Every reading and writing of that grammar is here, so no module splits a name on `:` itself.
"""

from __future__ import annotations

from typing import Final, Literal, cast, get_args

TypeName = Literal[
    "int", "float", "str", "bool", "list", "dict", "any",
    "list:int", "list:float", "list:str", "list:bool",
    "json", "json:int", "json:float", "json:str", "json:bool", "json:list", "json:dict",
    "json:list:int", "json:list:float", "json:list:str", "json:list:bool",
]
"""Every type name a graph may hold: mypy checks each one written (a typo is an error before a run)."""
Scalar = Literal["int", "float", "str", "bool"]

TYPE_NAMES: Final = frozenset(get_args(TypeName))
ANY: Final = "any"
JSON: Final = "json"
SCALARS: tuple[Scalar, ...] = get_args(Scalar)
PARAMETER_TYPES: tuple[TypeName, ...] = SCALARS + ("list", "dict")


def type_name(text: str) -> TypeName:
    """`text` as a type name of the graph; ValueError when the grammar has no such name."""
    if text not in TYPE_NAMES:
        raise ValueError(f"not a type name of the step graph: {text!r}")
    return cast(TypeName, text)


def outer(type_name: TypeName) -> str:
    """The kind of value: `list` for `list:int`, `json` for `json:int`, the name itself otherwise."""
    return type_name.partition(":")[0]


def inner(type_name: TypeName) -> str:
    """What qualifies it: `int` for `list:int` or `json:int`; "" when nothing does."""
    return type_name.partition(":")[2]


def list_of(element: str) -> TypeName:
    """The type of a list of `element`s: `list:int`, or `list` when the elements are no one scalar type."""
    return type_name(f"list:{element}") if element in SCALARS else "list"


def element_of(list_type: TypeName) -> TypeName:
    """The type of a list's elements: `int` for `list:int`; ANY when it is not known."""
    return type_name(inner(list_type)) if outer(list_type) == "list" and inner(list_type) else ANY


def is_list(name: TypeName) -> bool:
    return outer(name) == "list"


def is_parameter_type(name: TypeName) -> bool:
    """A type KFP passes as a parameter (a scalar, a list, a dict, a list of a scalar)."""
    return name in PARAMETER_TYPES or (is_list(name) and inner(name) in SCALARS)


def json_of(declared: TypeName) -> TypeName:
    """The type of a value carried as its JSON text to a reader declaring `declared` (`json:int`)."""
    if is_json(declared):  # carried as JSON already
        return declared
    return JSON if declared == ANY else type_name(f"{JSON}:{declared}")


def is_json(name: TypeName) -> bool:
    return outer(name) == JSON
