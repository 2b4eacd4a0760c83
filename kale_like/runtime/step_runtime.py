"""The code every step runs, on a cluster and locally: one implementation, embedded verbatim.

The KFP backend copies everything below the marker line into each component's body, so a step
needs no kale_like install in its image; the local executor imports this module and calls the
same functions. Everything here must therefore be self-contained: standard library imports inside
the functions, optional ones (numpy, pandas, cloudpickle) only when a value needs them.

A value is stored as a directory holding one file whose name says how to read it back:
`value.json` (JSON-exact values), `value.npy` (numpy arrays), `value.pkl` (pickle protocol 5, used
for pandas objects and anything else stdlib pickle handles), `value.cloudpickle` (functions and
classes defined in the notebook). Writes go to a temporary sibling and are renamed into place, so
a crash never leaves a half-written value behind.
"""

# --- embedded runtime below: keep self-contained ---


def _kl_is_json_exact(value, depth=0):
    if depth > 100:
        return False
    if value is None or type(value) in (bool, int, str):
        return True
    if type(value) is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if type(value) is list:
        return all(_kl_is_json_exact(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(type(k) is str and _kl_is_json_exact(v, depth + 1) for k, v in value.items())
    return False


def _kl_save_value(value, path):
    """Write `value` under directory `path`; return the format used."""
    import os
    import pickle
    import shutil
    import sys

    path = str(path)
    temporary = path + ".partial"
    shutil.rmtree(temporary, ignore_errors=True)
    os.makedirs(temporary)
    numpy = sys.modules.get("numpy")
    if _kl_is_json_exact(value):
        import json

        kind = "json"
        with open(os.path.join(temporary, "value.json"), "w", encoding="utf-8") as handle:
            json.dump(value, handle)
    elif numpy is not None and type(value) is numpy.ndarray and not value.dtype.hasobject:
        kind = "npy"
        numpy.save(os.path.join(temporary, "value.npy"), value, allow_pickle=False)
    else:
        kind = "pkl"
        target = os.path.join(temporary, "value.pkl")
        try:
            with open(target, "wb") as handle:
                pickle.dump(value, handle, protocol=5)
        except Exception:
            os.remove(target)
            try:
                import cloudpickle
            except ImportError:
                raise TypeError(
                    f"cannot pass a {type(value).__name__} to another step: pickle failed and "
                    "cloudpickle is not installed"
                ) from None
            kind = "cloudpickle"
            with open(os.path.join(temporary, "value.cloudpickle"), "wb") as handle:
                cloudpickle.dump(value, handle, protocol=5)
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    os.replace(temporary, path)
    return kind


def _kl_load_value(path, mmap_threshold=64 * 1024 * 1024):
    """Read back a value written by `_kl_save_value`."""
    import os
    import pickle

    path = str(path)
    names = os.listdir(path) if os.path.isdir(path) else []
    if "value.json" in names:
        import json

        with open(os.path.join(path, "value.json"), encoding="utf-8") as handle:
            return json.load(handle)
    if "value.npy" in names:
        import numpy

        target = os.path.join(path, "value.npy")
        big = os.path.getsize(target) >= mmap_threshold
        return numpy.load(target, mmap_mode="c" if big else None, allow_pickle=False)
    for name in ("value.pkl", "value.cloudpickle"):
        if name in names:
            with open(os.path.join(path, name), "rb") as handle:
                return pickle.load(handle)
    raise FileNotFoundError(f"no stored value in {path}")


def _kl_run_step(step, cells, values=None, inputs=None, outputs=None, metrics=None, metrics_artifact=None):
    """Run a step's cells in one fresh namespace, as a notebook would, then store its outputs.

    `cells` is a list of (label, code); `values` are plain values (parameters) and `inputs`
    artifact objects or paths to load; `outputs` maps names to artifact objects or paths to
    write; `metrics` names variables to log on `metrics_artifact`. Returns the namespace.
    """
    import linecache

    namespace = {"__name__": "__main__", "display": _kl_display}
    namespace.update(values or {})
    for name, artifact in (inputs or {}).items():
        namespace[name] = _kl_load_value(getattr(artifact, "path", artifact))
    for label, code in cells:
        filename = f"<{label}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        exec(compile(code, filename, "exec"), namespace)
    for name, artifact in (outputs or {}).items():
        if name not in namespace:
            raise NameError(f"step {step!r} did not define {name!r}, which a later step reads")
        kind = _kl_save_value(namespace[name], getattr(artifact, "path", artifact))
        if hasattr(artifact, "metadata"):
            artifact.metadata["format"] = kind
            artifact.metadata["variable"] = name
    for name in metrics or ():
        value = namespace.get(name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {name!r} is a {type(value).__name__}; metrics must be numbers") from None
        if metrics_artifact is not None:
            metrics_artifact.log_metric(name, number)
    return namespace


def _kl_display(*objects, **_options):
    for item in objects:
        print(repr(item))
