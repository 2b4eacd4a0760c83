"""The code every step runs, on a cluster and locally: one implementation, shipped with each step.

The KFP backend puts the functions below the marker that a step can call into that step's
component, compressed (`kale_like/backends/kfp/packed_runtime.py`: a step with no artifact output
carries no serialiser, one that does not import kale_like no SDK stand-in), so a step needs no
kale_like install in its image; the local executor imports this module and calls the same
functions. Everything here must therefore be self-contained: standard library imports inside the
functions, optional ones (numpy, pandas, cloudpickle) only when a value needs them; and a function
may call one that a step leaves out only where the step cannot reach it.

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


def _kl_coerce(value, type_name):
    """Give a parameter value its declared type (`int`, `list:int`, ...).

    Values reach a step as JSON through KFP, where an int can arrive as 2.0 (KFP's local runner
    does this to Collected ints) and a numpy scalar cannot travel at all.
    """
    outer, _, inner = (type_name or "any").partition(":")
    if outer == "json" and isinstance(value, str):  # a value of unknown type, sent as its JSON text
        import json

        return _kl_coerce(json.loads(value), inner)  # then as the step's annotation says, if it has one
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if outer == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if outer == "float" and type(value) is int:
        return float(value)
    if outer == "bool" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if outer == "bool" and not isinstance(value, (bool, str)):
        return bool(value)
    if outer == "list" and hasattr(value, "tolist") and not isinstance(value, (list, str)):
        value = value.tolist()
    if outer == "list" and isinstance(value, (list, tuple)):
        return [_kl_coerce(item, inner) for item in value]
    return value


def _kl_run_step(step, cells, values=None, inputs=None, outputs=None, metrics=None, metrics_artifact=None,
                 types=None, result=None, prelude=(), key_order=None, lineage=None):
    """Run a step's code in one fresh namespace, as a notebook would, then store its outputs.

    `prelude` and `cells` are lists of (label, code), run before and after the inputs are
    bound (so an input shadows a prelude name, as a later notebook cell would); `key_order`
    restores the key order of dict parameters (KFP passes them as unordered maps); `lineage` is
    metadata every output artifact carries (source, code hash, git commit, ...); `values` are plain values (parameters), coerced to
    `types`; `inputs` are artifact objects or paths to load (a list of them for a collected
    input); `outputs` maps names to artifact objects or paths to write; `metrics` names variables
    to log on `metrics_artifact`. Returns the values named in `result` ((name, type) pairs):
    one value, or a tuple for several (KFP's NamedTuple outputs). Every output artifact's
    metadata names the step (a component shared by several steps learns which one it runs here).
    """
    provide_sdk = globals().get("_kl_provide_sdk")  # left out of the steps that do not import kale_like
    if provide_sdk is not None:
        provide_sdk()
    if lineage is not None and "step" not in lineage:
        lineage = {**lineage, "step": step}
    span = globals().get("_kl_span")  # left out where the image cannot have the OpenTelemetry SDK
    if span is None:
        return _kl_run_step_body(step, cells, values, inputs, outputs, metrics, metrics_artifact, types, result,
                                 prelude, key_order, lineage)
    with span(step):
        return _kl_run_step_body(step, cells, values, inputs, outputs, metrics, metrics_artifact, types, result,
                                 prelude, key_order, lineage)


def _kl_stand_still(outputs, result):
    """What a task that must not run returns (a loop's filler iteration): empty values of each type."""
    for artifact in (outputs or {}).values():
        _kl_save_value(None, getattr(artifact, "path", artifact))
    if not result:
        return None
    empty = {"int": 0, "float": 0.0, "str": "", "bool": False, "list": [], "dict": {}}
    values = tuple(empty.get((type_name or "").partition(":")[0]) for _, type_name in result)
    return values[0] if len(values) == 1 else values


def _kl_read_flags(values, inputs):
    """Take the flags lowering/empty_loops.py gives a step out of its values: whether it runs (false
    in a loop's filler iteration), and the names of the collected lists that are empty."""
    flags = [values.pop(name) for name in [n for n in values if n.startswith("_kl_run_if")]]
    empty = set()
    for flag in [name for name in values if name.startswith("_kl_empty_unless__")]:
        if values.pop(flag) in (False, "false"):  # the loop this list was collected from had no items
            name = flag[len("_kl_empty_unless__"):]
            empty.add(name)
            values.pop(name, None)
            inputs.pop(name, None)
    return not any(flag in (False, "false") for flag in flags), empty


def _kl_log_metrics(namespace, metrics, metrics_artifact):
    """Log the variables named in `metrics` (numbers) on the step's metrics artifact."""
    for name in metrics:
        value = namespace.get(name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {name!r} is a {type(value).__name__}; metrics must be numbers") from None
        if metrics_artifact is not None:
            metrics_artifact.log_metric(name, number)


def _kl_run_step_body(step, cells, values, inputs, outputs, metrics, metrics_artifact, types, result, prelude,
                      key_order, lineage):
    values, inputs = dict(values or {}), dict(inputs or {})
    runs, empty = True, set()
    read_flags = globals().get("_kl_read_flags")  # packed only into the steps that receive such flags
    if read_flags is not None:
        runs, empty = read_flags(values, inputs)
    if not runs:
        return _kl_stand_still(outputs, result)
    namespace = {"__name__": "__main__", "display": _kl_display}
    for label, code in prelude:
        _kl_exec(label, code, namespace)
    namespace.update({name: [] for name in empty})
    for name, value in values.items():
        value = _kl_coerce(value, (types or {}).get(name))
        if isinstance(value, dict) and name in (key_order or {}):
            order = key_order[name]
            value = {**{k: value[k] for k in order if k in value}, **{k: value[k] for k in sorted(value) if k not in order}}
        namespace[name] = value
    for name, artifact in inputs.items():
        if isinstance(artifact, (list, tuple)):
            namespace[name] = [_kl_load_value(getattr(one, "path", one)) for one in artifact]
        else:
            namespace[name] = _kl_load_value(getattr(artifact, "path", artifact))
    for label, code in cells:
        _kl_exec(label, code, namespace)
    for name, artifact in (outputs or {}).items():
        if name not in namespace:
            raise NameError(f"step {step!r} did not define {name!r}, which a later step reads")
        kind = _kl_save_value(namespace[name], getattr(artifact, "path", artifact))
        if hasattr(artifact, "metadata"):
            artifact.metadata.update(lineage or {})
            artifact.metadata["format"] = kind
            artifact.metadata["variable"] = name
    if metrics:
        _kl_log_metrics(namespace, metrics, metrics_artifact)
    if not result:
        return None
    for name, _ in result:
        if name not in namespace:
            raise NameError(f"step {step!r} did not define {name!r}, which a later step reads")
    values = tuple(_kl_coerce(namespace[name], type_name) for name, type_name in result)
    for (name, type_name), value in zip(result, values):
        outer = (type_name or "").partition(":")[0]
        change = _kl_json_change(value) if outer in ("dict", "list") else ""
        if change:  # KFP passes a dict or list output as JSON: the reader would get another value, silently
            raise TypeError(
                f"step {step!r} hands on {name!r} as a {outer} parameter, which KFP passes as JSON, and {change} "
                f"-- fix: remove the step's `-> {outer}` annotation (an unannotated value travels pickled, "
                "unchanged), or make it JSON: str keys, and only str, int, float, bool, None, lists and dicts")
    return values[0] if len(values) == 1 else values


def _kl_json_change(value, depth=0):
    """What JSON would change in `value` (a dict key that is not a str, a value JSON cannot hold), or ''."""
    if depth > 100 or value is None or isinstance(value, (bool, int, float, str)):
        return ""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"its key {key!r} ({type(key).__name__}) would arrive as a str"
            change = _kl_json_change(item, depth + 1)
            if change:
                return change
        return ""
    if isinstance(value, (list, tuple)):
        return next((change for change in (_kl_json_change(item, depth + 1) for item in value) if change), "")
    return f"it holds a {type(value).__name__}, which JSON cannot hold"


def _kl_parallel_map(fn, items, max_workers=None, backend="thread"):
    """Apply `fn` to every item in parallel; results come back in the items' order.

    `backend`: "thread" (I/O-bound work) or "process" (CPU-bound; `fn` and the items must be
    picklable, and processes are forked where the platform allows it).
    """
    import concurrent.futures
    import multiprocessing
    import os

    items = list(items)
    if not items:
        return []
    workers = max(1, min(max_workers or os.cpu_count() or 1, len(items)))
    if backend == "thread":
        pool = concurrent.futures.ThreadPoolExecutor(workers)
    elif backend == "process" and multiprocessing.current_process().daemon:
        # a daemonic process (a local run's worker) may not start processes: threads give the same results
        import sys

        print("warning: parallel_map(backend='process') runs on threads here: this step runs in a worker "
              "process, which may not start processes of its own", file=sys.stderr)
        pool = concurrent.futures.ThreadPoolExecutor(workers)
    elif backend == "process" and "fork" in multiprocessing.get_all_start_methods():
        # forked workers inherit `fn`: a function defined in the step's code cannot be pickled by name
        forked = globals().setdefault("_kl_forked", {})
        key = id(fn)
        forked[key] = fn
        try:
            context = multiprocessing.get_context("fork")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                return list(pool.map(_kl_apply_forked, [key] * len(items), items))
        finally:
            forked.pop(key, None)
    elif backend == "process":
        pool = concurrent.futures.ProcessPoolExecutor(workers)
    else:
        raise ValueError(f"backend must be 'thread' or 'process', not {backend!r}")
    with pool:
        return list(pool.map(fn, items))


def _kl_apply_forked(key, item):
    """In a forked worker of `_kl_parallel_map`: the inherited function, applied to one item."""
    return globals()["_kl_forked"][key](item)


def _kl_span(step):
    """An OpenTelemetry span for the step, on a cluster, when OTEL_EXPORTER_OTLP_ENDPOINT is set.

    Nothing is imported otherwise, nor when the OpenTelemetry packages are missing from the image,
    nor in a local run (whose executor reports every step itself). TRACEPARENT sets the parent.
    """
    import contextlib
    import os

    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("KALE_LIKE_LOCAL_RUN"):
        return contextlib.nullcontext()
    try:
        from opentelemetry import propagate, trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    except ImportError:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def span():
        provider = TracerProvider(resource=Resource.create({"service.name": "kale_like"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
        parent = propagate.extract({"traceparent": os.environ.get("TRACEPARENT", "")})
        with provider.get_tracer("kale_like").start_as_current_span(step, context=parent) as current:
            current.set_attribute("kale_like.step", step)
            try:
                yield
                current.set_attribute("kale_like.status", "done")
            except BaseException:
                current.set_attribute("kale_like.status", "failed")
                raise
        provider.shutdown()

    return span()


def _kl_provide_sdk():
    """Serve `import kale_like` / `kale_like.sdk` in an image without kale_like installed."""
    import importlib.util
    import sys
    import types

    if "kale_like" in sys.modules or importlib.util.find_spec("kale_like") is not None:
        return

    def decorator(function=None, **_settings):
        return function if function is not None else (lambda inner: inner)

    module = types.ModuleType("kale_like")
    module.parallel_map = _kl_parallel_map
    module.parallel = lambda items, parallelism=None: items
    module.step = module.pipeline = decorator
    module.sdk = module
    sys.modules["kale_like"] = sys.modules["kale_like.sdk"] = module


def _kl_exec(label, code, namespace):
    import linecache

    filename = f"<{label}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    exec(compile(code, filename, "exec", dont_inherit=True), namespace)


def _kl_display(*objects, **_options):
    for item in objects:
        print(repr(item))
