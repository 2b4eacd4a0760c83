"""kale_like: annotated notebooks to Kubeflow Pipelines v2.

The package is split by phase, each importing only the ones before it:
`frontends` (read user source) -> `graph` (the step graph model) -> `backends` (KFP compiler)
-> `surfaces` (command line).
"""

__version__ = "0.1.0"

from kale_like.sdk import parallel, pipeline, step


def run(source, params=None, **options):
    """Run a pipeline locally; see `kale_like.surfaces.api.run`."""
    from kale_like.surfaces.api import run as _run

    return _run(source, params, **options)


def compile(source, pipeline=None):  # noqa: A001
    """Compile to KFP v2 IR YAML text; see `kale_like.surfaces.api.compile`."""
    from kale_like.surfaces.api import compile as _compile

    return _compile(source, pipeline)


__all__ = ["__version__", "compile", "parallel", "pipeline", "run", "step"]
