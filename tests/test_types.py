"""kale_like's type hints hold: mypy, with the settings in pyproject.toml's [tool.mypy], finds no error.

mypy runs in a subprocess from the repository root and keeps its incremental cache in .mypy_cache/
(gitignored), so a run after the first checks only what changed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO


def test_mypy_finds_no_error() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "kale_like"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"mypy reports errors:\n{result.stdout}{result.stderr}"
