"""A pipeline may return a step call or a comprehension over step calls, as Python would.

`return double(x)` used to be refused as "a step call inside another call's arguments" (and then
reported that the pipeline returns nothing); it compiles as if assigned to a name and returned.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import kale_like

pytestmark = pytest.mark.usefixtures("temp_files_in_tmp_path")

SOURCE = Path(__file__).resolve().parent / "fixtures" / "pipelines" / "return_call.py"


def plain(pipeline: str, **params):
    spec = importlib.util.spec_from_file_location("_kl_plain_return_call", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, pipeline)(**params)


@pytest.mark.parametrize(("pipeline", "params"), [("main", {}), ("main", {"xs": [4]}), ("inner", {"x": 7}),
                                                  ("squares", {"xs": [1, 5]})])
def test_returned_step_calls_give_what_python_returns(tmp_path, pipeline, params):
    result = kale_like.run(SOURCE, params, pipeline=pipeline, store=tmp_path / "store", echo=False)
    assert result.succeeded, result.error
    assert result.outputs == {"Output": plain(pipeline, **params)}
