"""Pipelines built in code: `Pipeline("name").add_step(fn, name=..., params={...})`, then `.run()`.

The same object compiles to KFP (`.compile()`), and `.run(executor=ParallelExecutor(4, "process"))`
runs independent steps concurrently on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from kale_like.errors import KaleLikeError
from kale_like.graph.model import PipelineSettings, StepGraph

if TYPE_CHECKING:
    from kale_like.backends.kfp.compile_aside import Compiling
    from kale_like.backends.kfp.compiled import CompiledPipeline


@dataclass(frozen=True)
class ParallelExecutor:
    """How `Pipeline.run` executes steps: `max_workers` at once, in processes (default) or threads."""

    max_workers: int | None = None
    backend: str = "process"


class Pipeline:
    """A pipeline assembled step by step in code."""

    def __init__(self, name: str, experiment: str = "", description: str = "", kfp_version: str | None = None):
        from kale_like.frontends.settings import pipeline_name_from
        from kale_like.kfp_server import ServerVersion

        self.name = pipeline_name_from(name)
        self.experiment = experiment
        self.description = description
        # the KFP server release the pipeline is compiled, checked and run for (default: the oldest supported)
        self.kfp_version = ServerVersion.parse(kfp_version, "Pipeline(kfp_version=...)")
        self._steps: list = []
        self._compiled: dict[tuple[str, str], CompiledPipeline] = {}  # (graph JSON, YAML name) -> CompiledPipeline

    def add_step(self, fn: Callable, name: str | None = None, params: dict[str, Any] | None = None,
                 after: list[str] | tuple[str, ...] = ()) -> str:
        """Add `fn` as a step; a parameter named like an earlier step receives that step's result."""
        from kale_like.frontends.code_built import function_step

        step_name = name or fn.__name__
        known = {s.name for s in self._steps}
        if step_name in known:
            raise KaleLikeError(f"this pipeline already has a step named '{step_name}'", None, "give each step a name")
        missing = [a for a in after if a not in known]
        if missing:
            raise KaleLikeError(f"after= names steps that were not added before '{step_name}': {missing}", None)
        earlier = {s.name: s.name for s in self._steps}
        self._steps.append(function_step(fn, step_name, dict(params or {}), tuple(after), earlier))
        return step_name

    def graph(self) -> StepGraph:
        source = str(self._steps[0].location.path) if self._steps else "<pipeline>"
        settings = PipelineSettings(self.name, self.description, self.experiment, kfp_version=str(self.kfp_version))
        return StepGraph(source=source, settings=settings, body=tuple(self._steps))

    def compile(self, path: str | Path | None = None) -> str:
        """The KFP v2 IR YAML (also written to `path` when given)."""
        key, compiling = self._compile_started(Path(path).name if path else "pipeline.yaml")
        with compiling:
            compiled = self._finished(key, compiling)
        if path is not None:
            from kale_like.backends.kfp.output_files import write_outputs

            write_outputs(compiled, Path(path), None)
        return compiled.yaml_text

    def _compile_started(self, name: str) -> tuple[tuple[str, str], Compiling]:
        """The compile of the steps as they stand, started (in a forked child where it may be, so the
        caller can do other work meanwhile), or finished by an earlier call; and its key in
        `_compiled` (`_finished` waits for it and keeps it there)."""
        from kale_like.backends.kfp.compile_aside import Compiling  # kfp stays out of the caller

        graph = self.graph()
        key = (graph.to_json(), name)  # compiling costs ~25 ms a step: a re-run of the same steps reuses it
        known = self._compiled.get(key)
        return key, Compiling(graph, name, finished=known)

    def _finished(self, key: tuple[str, str], compiling: Compiling) -> CompiledPipeline:
        compiled = self._compiled[key] = compiling.result()
        return compiled

    def run(self, executor: ParallelExecutor | None = None, **options):
        """Run locally; returns the RunResult (`.value(step)` loads a step's result)."""
        key, compiling = self._compile_started("pipeline.yaml")
        with compiling:
            # while the child compiles: the runner is imported (about 35 ms of yaml, sqlite3,
            # multiprocessing), and the run's workers fork, with the step runtime the module carries
            from kale_like.backends.local.ir import PipelineIR
            from kale_like.backends.local.run import LocalRun, RunConfig
            import os

            executor = executor or ParallelExecutor()
            options.setdefault("kfp_version", self.kfp_version)
            config = RunConfig(max_workers=executor.max_workers or os.cpu_count() or 1, backend=executor.backend,
                               **options)
            with LocalRun(config, most_tasks=len(self._steps), program=compiling.source) as run:
                return run.run(PipelineIR.from_text(self._finished(key, compiling).yaml_text, self.name), {})
