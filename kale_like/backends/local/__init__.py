"""The local backend: runs a compiled KFP v2 pipeline (the IR YAML) on this machine.

It interprets the same IR a cluster runs (`ir.py`, `scheduler.py`) and executes each lightweight
Python component with KFP's own executor (`component_runner.py`), in threads or worker processes.
"""
