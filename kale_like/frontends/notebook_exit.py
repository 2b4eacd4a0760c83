"""The `exit-handler` cell of a notebook: the pipeline's final step, run whatever happened.

The cell (and the untagged cells after it) becomes the graph's `exit_step`, which the KFP backend
wraps the pipeline body in (`dsl.ExitHandler`) and the local executor runs after the body. It reads
the pipeline's outcome as `pipeline_status`, a dict like the `@pipeline(on_exit=fn)` step's argument:
`state` (`SUCCEEDED`, `FAILED`, ...), `error_code`, `error_message` and `task`. Besides that it may
read pipeline parameters, imports and functions, but no step's values: it also runs when the steps
did not. It is not a step of the body: it cannot be one (`step:`), run after one (`prev:`), loop or
branch, and no step can read what it assigns or run after it.
"""

from __future__ import annotations

from dataclasses import replace

from kale_like.errors import KaleLikeError, SourceLocation, cell_name
from kale_like.frontends.dependencies import StepSource
from kale_like.frontends.notebook_flow import FLOW_TAGS
from kale_like.frontends.tags import Tag
from kale_like.graph.model import Input, Ref, Step

EXIT_KIND = "exit-handler"
EXIT_STEP = "exit_handler"  # the step's name (KFP task `exit-handler`)
STATUS_NAME = "pipeline_status"  # what the cell reads the pipeline's outcome as
_SEES = f"it sees {STATUS_NAME}, the pipeline parameters, imports and functions"


def both_kinds_error(kinds: list[Tag], where: SourceLocation) -> KaleLikeError | None:
    """A cell tagged exit-handler and step:NAME (or another cell kind)."""
    if not any(t.kind == EXIT_KIND for t in kinds):
        return None
    other = next(t.raw for t in kinds if t.kind != EXIT_KIND)
    if other.startswith(("step:", "block:")):
        return KaleLikeError(f"the exit-handler cell is also tagged '{other}': the exit handler is not a step",
                             where, f"remove '{other}' (the exit handler runs after every step), or put the "
                                    "step's code in a cell of its own")
    return KaleLikeError(f"the exit-handler cell is also tagged '{other}'", where,
                         "keep one of the two: a cell has one kind")


def second_cell_error(first: SourceLocation, where: SourceLocation) -> KaleLikeError:
    first_cell = cell_name(first.cell_index) if first.cell_index is not None else "another cell"
    return KaleLikeError(f"a second exit-handler cell (the first is {first_cell}): a pipeline has one exit "
                         "handler", where, "remove this tag: untagged cells after the exit-handler cell continue it")


def tag_error(tag: Tag, where: SourceLocation) -> KaleLikeError | None:
    """Tags that cannot apply to the exit handler (settings tags such as image: or env: can)."""
    if tag.kind == "prev":
        return KaleLikeError(f"'{tag.raw}' on the exit-handler cell: the exit handler already runs after every step",
                             where, f"remove '{tag.raw}'")
    if tag.kind in FLOW_TAGS:
        return KaleLikeError(f"'{tag.raw}' on the exit-handler cell: the exit handler runs once, whatever happened",
                             where, f"remove '{tag.raw}', or put the code in a step:NAME cell")
    return None


def detach(exit_draft: StepSource, steps: list[StepSource], parameters: set[str], allow_unknown: bool,
           where: SourceLocation) -> list[KaleLikeError]:
    """Check that nothing flows between the steps and the exit handler; fill the exit handler's
    parameters. Steps' reads and `prev:` that name the exit handler are reported and dropped (so
    the dependency pass does not report them again)."""
    errors = []
    if STATUS_NAME in parameters:
        errors.append(KaleLikeError(f"the pipeline parameter '{STATUS_NAME}' has the name the exit-handler cell "
                                    "reads the pipeline's outcome as", where, "rename the parameter"))
    if any(step.name == EXIT_STEP for step in steps):
        errors.append(KaleLikeError(f"a step is named '{EXIT_STEP}', the name of the exit handler's task", where,
                                    f"rename the step (step:NAME), e.g. step:{EXIT_STEP}_step"))
    exported = set().union(*(step.exports for step in steps)) if steps else set()
    for step in steps:
        for parent, at in [p for p in step.prev if p[0] == EXIT_STEP]:
            errors.append(KaleLikeError(f"step '{step.name}' cannot run after the exit handler (prev:{parent}): "
                                        "the exit handler runs after every step", at, f"remove prev:{parent}"))
        step.prev = [p for p in step.prev if p[0] != EXIT_STEP]
        for name, at in list(step.reads.items()):
            if name in exit_draft.defines and name not in exported and name not in parameters:
                errors.append(KaleLikeError(
                    f"step '{step.name}' reads '{name}', which only the exit-handler cell assigns", at,
                    f"the exit handler runs after every step and hands nothing on: assign '{name}' in a step"))
                del step.reads[name]
    for name, at in exit_draft.reads.items():
        if name == STATUS_NAME:
            continue
        if name in parameters:
            exit_draft.parameters.add(name)
            continue
        makers = [step.name for step in steps if name in step.exports]
        if makers:
            errors.append(KaleLikeError(
                f"the exit-handler cell reads '{name}', which step '{makers[-1]}' makes", at,
                f"the exit handler also runs when that step did not, so it receives no step's values; {_SEES}"))
        elif not allow_unknown:
            errors.append(KaleLikeError(f"name '{name}' is not defined for the exit-handler cell", at, _SEES))
    return errors


def with_status(step: Step) -> Step:
    """The exit step with the pipeline's outcome as its first input."""
    return replace(step, inputs=(Input(STATUS_NAME, Ref("final_status"), "dict"),) + step.inputs)
