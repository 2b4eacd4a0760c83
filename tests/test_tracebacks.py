"""A failed step's traceback cut down to the user's frames (the panel's run view and the command line)."""

from __future__ import annotations

from kale_like.surfaces.tracebacks import readable_log, step_failure

LOG = '''deploying 2.0
Traceback (most recent call last):
  File "/venv/kale_like/backends/local/component_runner.py", line 61, in run_component
    executor.Executor(executor_input=call.executor_input, function_to_execute=function).execute()
  File "/venv/site-packages/kfp/dsl/executor.py", line 453, in execute
    result = self.func(**func_kwargs)
             ^^^^^^^^^^^^^^^^^^^^^^^^
  File "<component deploy>", line 14, in deploy
  File "<kale_like_runtime_ef6025b84bc57a75>", line 33, in _kl_run_step
  File "<cell 6 (deploy)>", line 4, in <module>
    f(best_score)
  File "<helpers.py:3 (prelude)>", line 2, in f
    return 1/0
           ~^~
ZeroDivisionError: division by zero
'''


def test_the_error_comes_first_then_only_the_users_frames():
    failure = step_failure(LOG)
    assert failure.text() == (
        "ZeroDivisionError: division by zero\n\n"
        "where, in your code (most recent call last):\n"
        "  cell 6 (deploy), line 4, in <module>\n    f(best_score)\n"
        "  helpers.py:3 (prelude), line 2, in f\n    return 1/0")
    assert (failure.cell_index, failure.line) == (5, 4)  # the innermost frame in a cell, from 0


def test_the_steps_output_stays_and_the_traceback_is_replaced():
    shown = readable_log(LOG, with_error=False)
    assert shown.startswith("deploying 2.0\nwhere, in your code")
    assert "component_runner" not in shown and "ZeroDivisionError" not in shown


def test_a_traceback_without_user_frames_is_kept_whole():
    plain = 'Traceback (most recent call last):\n  File "/x/kfp/executor.py", line 1, in run\nValueError: no\n'
    assert readable_log(plain) == plain
    assert step_failure("no traceback here") is None
