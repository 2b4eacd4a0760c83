"""The function SDK: `@step`, `@pipeline` and `parallel`, for pipelines written as plain Python.

Decorated code runs as it reads: `@step` and `@pipeline` return the function itself (with its
settings attached) and `parallel(items, parallelism=N)` returns `items`, so a pipeline function
called directly runs its steps one after another in this process. kale_like compiles the same
source statically (it never imports the user's module to do so): a `for` loop over `parallel(...)`
or any list becomes a KFP ParallelFor, an `if` becomes If/Elif/Else, and so on.

`kale_like.sdk` mirrors Kale 0.7's `kale.sdk`, so an old SDK file needs only its import changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

STEP_SETTINGS = ("name", "image", "packages", "retries", "cpu", "memory", "gpu", "gpu_type", "cache",
                 "secrets", "env", "labels", "annotations", "limits", "timeout", "node_selector", "tolerations",
                 "display_name", "requests", "retry_backoff")
PIPELINE_SETTINGS = ("name", "experiment", "description", "on_exit", "service_account", "kfp_version")


def step(function: F | None = None, /, **settings: Any):
    """Mark a function as a pipeline step; use bare (`@step`) or with settings (`@step(cpu="1")`)."""
    _check(settings, STEP_SETTINGS, "step")

    def mark(fn: F) -> F:
        fn.__kale_like_step__ = dict(settings)  # type: ignore[attr-defined]
        return fn

    return mark(function) if function is not None else mark


def pipeline(function: F | None = None, /, **settings: Any):
    """Mark a function as a pipeline; its parameters (with defaults) are the pipeline's."""
    _check(settings, PIPELINE_SETTINGS, "pipeline")

    def mark(fn: F) -> F:
        fn.__kale_like_pipeline__ = dict(settings)  # type: ignore[attr-defined]
        return fn

    return mark(function) if function is not None else mark


def parallel(items: Iterable[Any], parallelism: int | None = None) -> Iterable[Any]:
    """Loop over `items` in parallel on KFP, at most `parallelism` at a time. In Python: `items`."""
    if parallelism is not None and (not isinstance(parallelism, int) or parallelism < 1):
        raise ValueError(f"parallelism must be a positive int, not {parallelism!r}")
    return items


def parallel_map(fn: Callable[[Any], Any], items: Iterable[Any], max_workers: int | None = None,
                 backend: str = "thread") -> list[Any]:
    """Parallel work inside one step, results in input order (the step runtime's own helper).

    Inside a compiled step, `from kale_like import parallel_map` is served by the embedded step
    runtime, so the step image still does not need kale_like installed.
    """
    from kale_like.runtime.step_runtime import _kl_parallel_map

    return _kl_parallel_map(fn, items, max_workers, backend)


def _check(settings: dict, allowed: tuple[str, ...], what: str) -> None:
    if what == "step" and "service_account" in settings:
        from kale_like.graph.overrides import SERVICE_ACCOUNT_PER_RUN

        raise TypeError(f"@step(service_account=...): {SERVICE_ACCOUNT_PER_RUN[0]}; {SERVICE_ACCOUNT_PER_RUN[1]}")
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise TypeError(f"@{what} got unknown settings {unknown}; allowed: {', '.join(allowed)}")
    if what == "pipeline" and "kfp_version" in settings:  # refused when the module is imported, as when compiled
        from kale_like.kfp_server import ServerVersion

        ServerVersion.parse(settings["kfp_version"], "@pipeline(kfp_version=...)")
