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

ANY = "any"
JSON = "json"
SCALARS = ("int", "float", "str", "bool")
PARAMETER_TYPES = SCALARS + ("list", "dict")


def outer(type_name: str) -> str:
    """The kind of value: `list` for `list:int`, `json` for `json:int`, the name itself otherwise."""
    return type_name.partition(":")[0]


def inner(type_name: str) -> str:
    """What qualifies it: `int` for `list:int` or `json:int`; "" when nothing does."""
    return type_name.partition(":")[2]


def list_of(element: str) -> str:
    """The type of a list of `element`s: `list:int`, or `list` when the elements are no one scalar type."""
    return f"list:{element}" if element in SCALARS else "list"


def element_of(list_type: str) -> str:
    """The type of a list's elements: `int` for `list:int`; ANY when it is not known."""
    return inner(list_type) if outer(list_type) == "list" and inner(list_type) else ANY


def is_list(type_name: str) -> bool:
    return outer(type_name) == "list"


def is_parameter_type(type_name: str) -> bool:
    """A type KFP passes as a parameter (a scalar, a list, a dict, a list of a scalar)."""
    return type_name in PARAMETER_TYPES or (is_list(type_name) and inner(type_name) in SCALARS)


def json_of(declared: str) -> str:
    """The type of a value carried as its JSON text to a reader declaring `declared` (`json:int`)."""
    return JSON if declared in (ANY, JSON) else f"{JSON}:{declared}"


def is_json(type_name: str) -> bool:
    return outer(type_name) == JSON
