"""OpenTelemetry spans for local runs: one span for the pipeline, one child span per step.

Only when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set (or a test passes its own span
processor): otherwise nothing is imported and nothing is sent. Spans carry the step name, status,
duration, whether it came from the cache, and its loop iteration.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Callable

ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"


class RunTracer:
    """Wraps a run's observer; `close()` ends the pipeline span and flushes."""

    def __init__(self, pipeline: str, run_id: str, processor=None):
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        self.trace = trace
        self.provider = TracerProvider(resource=Resource.create({"service.name": "kale_like"}))
        if processor is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            processor = BatchSpanProcessor(OTLPSpanExporter())
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("kale_like")
        self.root = self.tracer.start_span(f"pipeline {pipeline}", attributes={
            "kale_like.pipeline": pipeline, "kale_like.run_id": run_id})
        self.context = trace.set_span_in_context(self.root)
        self.started: dict[str, int] = {}
        self.lock = threading.Lock()

    def observe(self, event) -> None:
        now = time.time_ns()
        with self.lock:
            if event.status == "running":
                self.started[event.path] = now
                return
            if event.status not in ("done", "cached", "skipped", "failed"):
                return
            start = self.started.pop(event.path, now - int(event.seconds * 1e9))
        iteration = ",".join(re.findall(r"\[(\d+)\]", event.label))
        span = self.tracer.start_span(event.label, context=self.context, start_time=start, attributes={
            "kale_like.step": event.label, "kale_like.status": event.status,
            "kale_like.cached": event.status == "cached", "kale_like.iteration": iteration,
            "kale_like.duration_seconds": float(event.seconds)})
        if event.status == "failed":
            span.set_status(self.trace.Status(self.trace.StatusCode.ERROR, event.error[:200]))
        span.end(end_time=max(now, start))

    def close(self, status: str) -> None:
        self.root.set_attribute("kale_like.status", status)
        if status != "SUCCEEDED":
            self.root.set_status(self.trace.Status(self.trace.StatusCode.ERROR))
        self.root.end()
        self.provider.shutdown()


def tracer_for(pipeline: str, run_id: str, processor=None) -> RunTracer | None:
    """A tracer when tracing is asked for (the environment variable, or a test's processor)."""
    if processor is None and not os.environ.get(ENDPOINT):
        return None
    return RunTracer(pipeline, run_id, processor)


def chained(*observers: Callable | None) -> Callable:
    active = [o for o in observers if o is not None]

    def observe(event) -> None:
        for observer in active:
            observer(event)

    return observe
