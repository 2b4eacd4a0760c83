"""Code that runs inside a step. Self-contained: it is embedded into every KFP component."""
