"""Backends: turn a `StepGraph` into something that runs (KFP IR, local runs)."""
