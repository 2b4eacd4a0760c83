"""kale_like: annotated notebooks to Kubeflow Pipelines v2.

The package is split by phase, each importing only the ones before it:
`frontends` (read user source) -> `graph` (the step graph model) -> `backends` (KFP compiler)
-> `surfaces` (command line).
"""

__version__ = "0.1.0"

from kale_like.sdk import parallel, parallel_map, pipeline, step


def __getattr__(name: str):
    """`Pipeline` and `ParallelExecutor` load on first use (keeps `import kale_like` light)."""
    if name in ("Pipeline", "ParallelExecutor"):
        from kale_like.surfaces import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'kale_like' has no attribute {name!r}")


def run(source, params=None, **options):
    """Run a pipeline locally; see `kale_like.surfaces.api.run`."""
    from kale_like.surfaces.api import run as _run

    return _run(source, params, **options)


def compile(source, pipeline=None, **options):  # noqa: A001
    """Compile to KFP v2 IR YAML text; see `kale_like.surfaces.api.compile` (`kfp_version=`)."""
    from kale_like.surfaces.api import compile as _compile

    return _compile(source, pipeline, **options)


def show(source, pipeline=None):
    """In a notebook: the pipeline graph as a widget; see `kale_like.surfaces.widgets.show`."""
    from kale_like.surfaces.widgets import show as _show

    return _show(source, pipeline)


def _jupyter_server_extension_points():
    """The Jupyter server extension behind the JupyterLab panel (REST API under /kale-like/)."""
    return [{"module": "kale_like.surfaces.server"}]


def _jupyter_labextension_paths():
    """The prebuilt JupyterLab extension (the Pipeline panel)."""
    return [{"src": "surfaces/server/labextension", "dest": "kale-like"}]


__all__ = ["ParallelExecutor", "Pipeline", "__version__", "compile", "parallel", "parallel_map", "pipeline", "run",
           "show", "step"]
