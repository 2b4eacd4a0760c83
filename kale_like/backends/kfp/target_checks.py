"""The checks every compile's result passes against where it will run, whether kfp compiled it now
or an earlier compile kept it (`kept_pipelines.py`): they depend on the graph's settings, which
the kept YAML's key does not hold."""

from __future__ import annotations

from kale_like.backends.kfp.compiled import CompiledPipeline
from kale_like.backends.kfp.server_checks import check_compiled
from kale_like.backends.kfp.workflow_size import WorkflowShape, check_workflow_size
from kale_like.graph.model import StepGraph


def checked(graph: StepGraph, yaml_text: str, shape: WorkflowShape, dsl_source: str) -> CompiledPipeline:
    """The compiled pipeline, once the checks that depend on `graph`'s settings pass: what the
    targeted KFP server cannot run (`server_checks.py`), and a Workflow larger than the cluster
    stores (`workflow_size.py`). KaleLikeError naming what to change."""
    check_compiled(yaml_text, graph)
    check_workflow_size(shape, graph.settings.max_workflow_bytes, graph.settings.kfp_version, graph.source)
    return CompiledPipeline(yaml_text, dsl_source)
