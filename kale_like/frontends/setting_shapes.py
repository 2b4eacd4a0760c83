"""The shape each `@step(...)` setting must have, checked before the setting is used.

A decorator's settings are read from the source as literals, so any literal arrives: `labels="team"`,
`labels=None`, `packages=True`, `packages=-1`. Each is refused here with the decorator's file and
line, what the setting takes and an example, instead of failing later inside the compiler.
"""

from __future__ import annotations

_MAPPINGS = {
    "limits": '{"cpu": "2", "nvidia.com/gpu": 1}',
    "requests": '{"cpu": "500m", "memory": "1Gi"}',
    "secrets": '{"API_TOKEN": "secret-name/key"}',
    "node_selector": '{"disktype": "ssd"}',
    "env": '{"MODE": "prod"}',
    "labels": '{"team": "ml"}',
    "annotations": '{"owner": "data-team"}',
}
_TEXTS = {"name": '"train"', "image": '"python:3.11"', "gpu_type": '"nvidia.com/gpu"', "display_name": '"Train"',
          "retry_backoff": '"30s"'}
_AMOUNTS = {"cpu": '"500m"', "memory": '"2Gi"', "gpu": "1"}
_WHOLE_NUMBERS = {"retries": "3", "timeout": "3600"}


def shape_problem(key: str, value: object) -> tuple[str, str] | None:
    """(what is wrong, what to write instead) for a `@step` setting of the wrong shape; None if fine."""
    shown = _shown(value)
    if key in _MAPPINGS:
        if not isinstance(value, dict):
            return f"{key}={shown} is not a dict", f"@step({key}={_MAPPINGS[key]})"
        for name, item in value.items():
            if not isinstance(name, str) or not name:
                return f"{key} has the key {_shown(name)}; keys are names (text)", f"@step({key}={_MAPPINGS[key]})"
            if not isinstance(item, (str, int, float)):
                return f"{key}[{name!r}] is {_shown_type(item)}; values are text or numbers", \
                    f"@step({key}={_MAPPINGS[key]})"
        return None
    if key == "packages":
        items = value if isinstance(value, (list, tuple)) else [value]
        if not all(isinstance(item, str) and item.strip() for item in items):
            return f"packages={shown} is not a package name or a list of them", '@step(packages=["pandas==2.2"])'
        return None
    if key == "tolerations":
        items = value if isinstance(value, (list, tuple)) else [value]
        if not all(isinstance(item, dict) for item in items):
            return f"tolerations={shown} is not a dict or a list of dicts", \
                '@step(tolerations=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}])'
        return None
    if key in _TEXTS and not isinstance(value, str):
        return f"{key}={shown} is not text", f"@step({key}={_TEXTS[key]})"
    if key in _AMOUNTS and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
        return f"{key}={shown} is not an amount", f"@step({key}={_AMOUNTS[key]})"
    if key in _WHOLE_NUMBERS and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        return f"{key}={shown} is not a whole number of 0 or more", f"@step({key}={_WHOLE_NUMBERS[key]})"
    if key == "cache" and not isinstance(value, bool):
        return f"cache={shown} is not True or False", "@step(cache=False)"
    return None


def _shown_type(value: object) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
