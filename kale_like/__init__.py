"""kale_like: annotated notebooks to Kubeflow Pipelines v2.

The package is split by phase, each importing only the ones before it:
`frontends` (read user source) -> `graph` (the step graph model) -> `backends` (KFP compiler)
-> `surfaces` (command line).
"""

__version__ = "0.1.0"

from kale_like.sdk import parallel, pipeline, step

__all__ = ["__version__", "parallel", "pipeline", "step"]
