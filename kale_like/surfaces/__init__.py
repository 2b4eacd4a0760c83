"""Surfaces users drive kale_like from: the command line (and later the JupyterLab panel)."""
