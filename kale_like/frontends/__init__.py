"""Frontends: turn user source (notebooks, decorated functions) into a `StepGraph`."""
