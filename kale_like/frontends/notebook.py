"""Annotated notebook -> `StepGraph`.

Reads the cells (nbformat), sorts them by tag into imports, functions, parameters, metrics and
steps, scope-analyses each step's code (libcst), resolves which step produces each name a step
reads, and returns an immutable graph. Every problem found is collected and raised together,
each with the cell and line it comes from.
"""

from __future__ import annotations

import ast
import contextlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import libcst as cst

from kale_like.errors import KaleLikeError, SourceLocation, raise_collected
from kale_like.frontends import analysis, dependencies, kept_facts
from kale_like.frontends.analysis import CodeFacts, CodeSyntaxError, analyze, check, compiles, parse
from kale_like.frontends.magics import strip_magics
from kale_like.frontends.notebook_flow import FLOW_TAGS, apply_flow, flow_reads
from kale_like.frontends.notebook_reader import RawCell, read_notebook
from kale_like.frontends.notebook_sections import untagged, with_section_tags
from kale_like.frontends.packages import distributions_for
from kale_like.frontends.prelude import Prelude
from kale_like.frontends.settings import SettingsBuilder, pipeline_settings
from kale_like.frontends import notebook_exit
from kale_like.frontends.tags import CELL_KINDS, Tag, parse_tag, unknown_tag_error
from kale_like.graph.model import CodeBlock, Input, Output, Parameter, Ref, Step, StepGraph
from kale_like.graph.types import TypeName

SECTION_KINDS = CELL_KINDS


@dataclass
class _Section:
    """A run of cells of one kind (a step, imports, ...) as the tags group them."""

    kind: str
    name: str = ""
    cells: list[tuple[RawCell, str]] = field(default_factory=list)
    tags: list[tuple[Tag, SourceLocation]] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)


def notebook_to_graph(path: str | Path, pipeline: str | None = None, one_step: bool = False) -> StepGraph:
    """Build the step graph of an annotated notebook (raises KaleLikeError on bad input).

    A notebook without step tags whose cells define `@pipeline` functions is read as a module;
    `pipeline` picks the function when several could be the main one. A notebook with no tags at
    all gets a step per markdown section (`notebook_sections.py`); `one_step` makes the whole
    notebook one step.
    """
    notebook = read_notebook(path)
    source = str(path)
    errors: list[KaleLikeError] = []
    warnings: list[str] = []
    if one_step or (untagged(notebook) and not _defines_pipeline_function(notebook.cells)):
        notebook, made = with_section_tags(notebook, one_step)
        warnings.append(made)
    sections = _sections(notebook.cells, source, errors, warnings)
    raise_collected(errors)
    parameters = _parameters(sections, source, errors)
    metrics = _metrics(sections, source, errors)
    shared = [s for s in sections if s.kind in ("imports", "functions")]
    prelude = Prelude.from_cells(
        [cell for s in shared for cell in s.cells], source, errors, tuple(p for s in shared for p in s.packages)
    )
    steps = [s for s in sections if s.kind == "step"]
    exits = [s for s in sections if s.kind == notebook_exit.EXIT_KIND]
    if not steps and not errors and _defines_pipeline_function(notebook.cells):
        return _functions_in_cells(notebook, source, pipeline)
    if not steps and not errors:
        errors.append(
            KaleLikeError(
                "no step cells: nothing to turn into a pipeline",
                SourceLocation(source),
                "tag at least one code cell 'step:NAME' (e.g. step:load_data)",
            )
        )
    raise_collected(errors)
    settings, meta_warnings = pipeline_settings(notebook.metadata, source)
    warnings.extend(meta_warnings)
    joined = {s.name: _joined(s) for s in steps + exits}
    recalled = _recall_facts(joined.values())
    analysis.analyze_all(code for code in joined.values() if code not in recalled)
    drafts, code_of = _analyse_steps(steps, prelude, source, errors)
    exit_drafts, exit_code = _analyse_steps(exits, prelude, source, errors)
    kept_facts.remember({joined[name]: facts for name, (_, facts) in {**code_of, **exit_code}.items()
                         if joined[name] not in recalled})
    raise_collected(errors)
    exit_draft = exit_drafts[0] if exit_drafts else None
    if exit_draft is not None:
        errors.extend(notebook_exit.detach(exit_draft, drafts, {p.name for p in parameters}, prelude.star_import,
                                           exit_draft.location))
    errors.extend(dependencies.resolve(drafts, {p.name for p in parameters}, prelude.star_import))
    conditional = frozenset(s.name for s in steps if any(tag.kind == "when" for tag, _ in s.tags))
    logged, metric_errors = dependencies.assign_metrics(metrics, drafts, conditional)
    errors.extend(metric_errors)
    order, order_errors = dependencies.execution_order(drafts)
    errors.extend(order_errors)
    raise_collected(errors)
    defaults = SettingsBuilder.from_metadata(notebook.metadata, source, errors)
    by_name = {d.name: d for d in drafts}
    parameter_types = {p.name: p.type for p in parameters}
    section_of = {s.name: s for s in steps}
    built: dict[str, Step] = {}
    for name in order:
        step = _build_step(section_of[name], by_name[name], code_of[name], prelude, logged, defaults, parameter_types,
                           errors)
        built[name] = _with_producer_packages(step, built)
    raise_collected(errors)
    tags_of = {s.name: [(t, w) for t, w in s.tags if t.kind in FLOW_TAGS] for s in steps}
    code_reads = {name: set(facts.reads) for name, (_, facts) in code_of.items()}
    body = apply_flow(list(built.values()), tags_of, code_reads, parameter_types, errors)
    exit_step = None
    if exit_draft is not None:
        exit_step = notebook_exit.with_status(_build_step(exits[0], exit_draft, exit_code[exit_draft.name], prelude, {},
                                                          defaults, parameter_types, errors))
    raise_collected(errors)
    return StepGraph(
        exit_step=exit_step,
        source=source,
        settings=settings,
        body=body,
        parameters=tuple(parameters),
        metrics=tuple(name for name, _ in metrics),
        warnings=tuple(warnings),
    )


def _sections(cells, source: str, errors: list, warnings: list) -> list[_Section]:
    """Group cells by their tags; untagged cells continue the section above them."""
    sections: list[_Section] = []
    steps: dict[str, _Section] = {}
    current: _Section | None = None
    for cell in cells:
        where = SourceLocation(source, cell.index)
        tags = []
        for raw in cell.tags:
            tag = parse_tag(raw)
            if tag is None:
                errors.append(unknown_tag_error(raw, where))
            else:
                tags.append(tag)
        kinds = [t for t in tags if t.kind in SECTION_KINDS]
        if len({(t.kind, t.fields) for t in kinds}) > 1:
            listed = ", ".join(t.raw for t in kinds)
            errors.append(notebook_exit.both_kinds_error(kinds, where)
                          or KaleLikeError(f"the cell has more than one cell kind: {listed}", where, "keep one"))
            continue
        cleaned = strip_magics(cell.source)
        for line, text in cleaned.removed:
            warnings.append(f"{SourceLocation(source, cell.index, line=line).render()}: IPython line left out: {text.strip()}")
        if kinds:
            kind = kinds[0]
            if kind.kind == "step":
                name = kind.required("name")
                current = steps.get(name)
                if current is None:
                    current = steps[name] = _Section("step", name)
                    sections.append(current)
            elif kind.kind == notebook_exit.EXIT_KIND:
                first = next((s for s in sections if s.kind == kind.kind), None)
                if first is not None:
                    errors.append(notebook_exit.second_cell_error(SourceLocation(source, first.cells[0][0].index),
                                                                  where))
                    continue
                current = _Section(kind.kind, notebook_exit.EXIT_STEP)
                sections.append(current)
            elif kind.kind == "skip":
                _reject_settings_tags(tags, where, errors)
                continue  # like Kale: untagged cells after a skip continue the section above it
            else:
                current = _Section(kind.kind)
                sections.append(current)
        elif current is None:
            if cell.source.strip():
                warnings.append(
                    f"{where.render()}: untagged cell before any tagged cell; left out "
                    "(tag it imports, functions, pipeline-parameters or step:NAME to keep it)"
                )
            _reject_settings_tags(tags, where, errors)
            continue
        for tag in tags:
            if tag.kind in SECTION_KINDS:
                continue
            if current.kind == notebook_exit.EXIT_KIND and notebook_exit.tag_error(tag, where):
                errors.append(notebook_exit.tag_error(tag, where))
            elif current.kind not in ("step", notebook_exit.EXIT_KIND):
                errors.append(
                    KaleLikeError(f"tag '{tag.raw}' only applies to step cells", where, "move it to a step:NAME cell")
                )
            else:
                current.tags.append((tag, where))
        current.cells.append((cell, cleaned.code))
        current.packages.extend(cleaned.packages)
    return sections


def _reject_settings_tags(tags: list[Tag], where: SourceLocation, errors: list) -> None:
    for tag in tags:
        if tag.kind not in SECTION_KINDS:
            errors.append(
                KaleLikeError(f"tag '{tag.raw}' only applies to step cells", where, "move it to a step:NAME cell")
            )


def _parameters(sections: list[_Section], source: str, errors: list) -> list[Parameter]:
    result: dict[str, Parameter] = {}
    for section in (s for s in sections if s.kind == "pipeline-parameters"):
        for cell, code in section.cells:
            for statement, line in _statements(cell, code, source, errors):
                if _is_pass(statement):
                    continue
                parameter = _parameter(statement, SourceLocation(source, cell.index, line=line), errors)
                if parameter is not None:
                    result[parameter.name] = parameter
    return list(result.values())


_TYPE_OF: dict[type, TypeName] = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}


def _parameter(statement: cst.BaseStatement, where: SourceLocation, errors: list) -> Parameter | None:
    small = statement.body[0] if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1 else None
    target = value = annotation = None
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target, value = small.targets[0].target, small.value
    elif isinstance(small, cst.AnnAssign) and small.value is not None:
        target, value, annotation = small.target, small.value, small.annotation.annotation
    if not isinstance(target, cst.Name) or value is None:  # value is set wherever target is
        errors.append(
            KaleLikeError(
                "a pipeline-parameters cell may only hold 'NAME = value' lines",
                where,
                "move other code to a step cell",
            )
        )
        return None
    try:
        default = ast.literal_eval(cst.Module([]).code_for_node(value).strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        errors.append(
            KaleLikeError(
                f"parameter '{target.value}' must be a literal value (a number, string, bool, list or dict)",
                where,
                "compute derived values in a step instead",
            )
        )
        return None
    if _bad_parameter_name(target.value):
        errors.append(KaleLikeError(f"parameter '{target.value}' cannot be a KFP parameter: "
                                    f"{_bad_parameter_name(target.value)}", where,
                                    "rename it, e.g. 'n_samples'"))
        return None
    problem = _unrepresentable(default)
    if problem:
        errors.append(KaleLikeError(f"parameter '{target.value}' cannot be a KFP parameter: {problem}", where,
                                    "use string keys and no None values, or compute the value in a step"))
        return None
    default = _lists(default)
    type_name = _TYPE_OF.get(type(default))
    declared = annotation.value if isinstance(annotation, cst.Name) else None
    if declared == "float" and type_name == "int" and isinstance(default, int):
        default, type_name = float(default), "float"
    if type_name is None or (declared and declared != type_name):
        errors.append(
            KaleLikeError(
                f"parameter '{target.value}' has a value of type {type(default).__name__}",
                where,
                "pipeline parameters are int, float, str, bool, list or dict",
            )
        )
        return None
    return Parameter(target.value, type_name, default, where)


def _lists(value: object) -> object:
    """Tuples, at any depth, as the lists they become in JSON."""
    if isinstance(value, (list, tuple)):
        return [_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    return value


def _bad_parameter_name(name: str) -> str:
    if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", name):
        return "KFP parameter names start with an ASCII letter and hold only letters, digits and _"
    return ""


def _unrepresentable(value: object, depth: int = 0) -> str:
    """Why KFP cannot carry a parameter value (its dicts are JSON objects without nulls), or ''."""
    if depth > 50:
        return "it is nested too deeply"
    if value is None:
        return "it holds None"
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return "it holds NaN or infinity"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"the dict key {key!r} is not a string"
            problem = _unrepresentable(item, depth + 1)
            if problem:
                return problem
    if isinstance(value, (list, tuple)):
        for item in value:
            problem = _unrepresentable(item, depth + 1)
            if problem:
                return problem
    if isinstance(value, (set, frozenset, bytes, complex)):
        return f"a {type(value).__name__} is not JSON"
    if isinstance(value, str) and any(ord(ch) < 32 and ch != "\t" for ch in value):
        return "its text holds a line break or control character, which KFP's YAML header cannot show"
    return ""


def _metrics(sections: list[_Section], source: str, errors: list) -> list[tuple[str, SourceLocation]]:
    result: list[tuple[str, SourceLocation]] = []
    for section in (s for s in sections if s.kind == "pipeline-metrics"):
        for cell, code in section.cells:
            for statement, line in _statements(cell, code, source, errors):
                if _is_pass(statement):
                    continue
                where = SourceLocation(source, cell.index, line=line)
                name = _metric_name(statement)
                if name is None:
                    errors.append(
                        KaleLikeError(
                            "a pipeline-metrics cell may only hold 'print(name)' or 'name' lines",
                            where,
                            "compute the metric in a step and list its variable here",
                        )
                    )
                elif name not in {n for n, _ in result}:
                    result.append((name, where))
    return result


def _is_pass(statement: cst.BaseStatement) -> bool:
    """`pass` lines stand in for IPython lines removed with a warning."""
    return isinstance(statement, cst.SimpleStatementLine) and all(isinstance(s, cst.Pass) for s in statement.body)


def _metric_name(statement: cst.BaseStatement) -> str | None:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if not isinstance(small, cst.Expr):
        return None
    value = small.value
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value == "print":
        if len(value.args) == 1 and value.args[0].keyword is None and value.args[0].star == "":
            value = value.args[0].value
    return value.value if isinstance(value, cst.Name) else None


def _statements(cell: RawCell, code: str, source: str, errors: list):
    """Top-level statements of a cell with their 1-based line numbers."""
    try:
        module = parse(code)
    except CodeSyntaxError as error:
        errors.append(_syntax_error(error, source, cell))
        return []
    wrapper = cst.MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(cst.metadata.PositionProvider)
    return [(s, positions[s].start.line) for s in module.body if s in positions]


def _syntax_error(error: CodeSyntaxError, source: str, cell: RawCell, line_offset: int = 0, step: str | None = None):
    message, hint = error.described("fix the code so the cell runs in a notebook")
    return KaleLikeError(message, SourceLocation(source, cell.index, step, error.line - line_offset, error.column), hint)


def _analyse_steps(steps: list[_Section], prelude: Prelude, source: str, errors: list):
    """Scope-analyse each step's joined cells; map read positions back to cells."""
    drafts = []
    code_of = {}
    for section in steps:
        blocks, offsets = [], []
        line = 1
        for cell, code in section.cells:
            offsets.append((line, cell))
            blocks.append(code)
            line += code.count("\n") + 1
        first = section.cells[0][0] if section.cells else None
        location = SourceLocation(source, first.index if first else None, section.name)
        facts = _step_facts(section, source, location, errors)
        if facts is None:
            continue
        reads = {}
        flow_needs, flow_provides = flow_reads(section.tags)
        needed = prelude.external_reads(set(facts.reads), facts.defines) - flow_provides
        flow_where = next((w for t, w in section.tags if t.kind in ("foreach", "when")), location)
        for name in flow_needs - needed:
            reads[name] = flow_where
        for name in needed:
            if name in facts.reads:
                cell_line, cell = _cell_at(offsets, facts.reads[name][0])
                reads[name] = SourceLocation(source, cell.index, section.name, cell_line, facts.reads[name][1])
            else:
                reads[name] = prelude.location_of_read(name) or location
        prev = [(t.required("name"), w) for t, w in section.tags if t.kind == "prev"]
        drafts.append(
            dependencies.StepSource(
                name=section.name,
                order=first.index if first else 0,
                location=location,
                reads=reads,
                defines=facts.defines,
                touches=facts.touches,
                prev=prev,
                tag_reads={name: tag.raw for tag, _ in section.tags for field, name in tag.fields
                           if (tag.kind, field) in (("foreach", "items"), ("when", "name"))},
            )
        )
        code_of[section.name] = (tuple(CodeBlock(code, SourceLocation(source, c.index, section.name)) for c, code in section.cells), facts)
    return drafts, code_of


def _joined(section: _Section) -> str:
    """A step's cells as one program, as the step runs them."""
    return "\n".join(code for _, code in section.cells)


def _recall_facts(codes) -> set[str]:
    """Let the analysis use the facts an earlier process kept of these codes (`kept_facts.py`): after an
    edit, only the steps whose code changed are analysed again. The codes recalled, or already known."""
    known = {code for code in codes if analysis.known(code)}
    recalled = kept_facts.recall(code for code in codes if code not in known)
    analysis.provide(recalled)
    return known | set(recalled)


def _step_facts(section: _Section, source: str, location: SourceLocation, errors: list) -> CodeFacts | None:
    """The facts of a step's cells run together; None, with the errors added, when they do not run.

    Each cell must compile on its own, as a notebook runs it: Python's compiler says whether it
    does (~0.1 ms a cell, kept by text); only when a cell does not, or the joined cells do not
    analyse, is each cell parsed with libcst too, to say which cell is wrong and why."""
    joined = _joined(section)
    if all(compiles(code) for _, code in section.cells):
        with contextlib.suppress(CodeSyntaxError):
            return analyze(joined)
    ok = True
    for cell, code in section.cells:
        try:
            check(code)
        except CodeSyntaxError as error:
            errors.append(_syntax_error(error, source, cell, step=section.name))
            ok = False
    if not ok:
        return None
    try:
        return analyze(joined)
    except CodeSyntaxError as error:
        message, hint = error.described("the step's cells do not run together; fix the code")
        errors.append(KaleLikeError(message, location, hint))
        return None


def _cell_at(offsets, line: int):
    start, cell = offsets[0]
    for candidate_start, candidate in offsets:
        if candidate_start <= line:
            start, cell = candidate_start, candidate
    return line - start + 1, cell


def _build_step(section, draft, code_and_facts, prelude: Prelude, logged, defaults, parameter_types, errors) -> Step:
    code, facts = code_and_facts
    prelude_blocks, prelude_modules = prelude.blocks_for(set(facts.reads))
    settings = defaults.with_tags(section.tags, errors)
    packages = set(distributions_for(facts.modules | prelude_modules))
    packages.update(section.packages)
    packages.update(prelude.packages)
    packages.update(settings.extra_packages)
    return Step(
        name=section.name,
        code=code,
        location=draft.location,
        prelude=prelude_blocks,
        inputs=tuple(
            [Input(p, Ref("parameter", p), parameter_types[p]) for p in sorted(draft.parameters)]
            + [Input(name, Ref("task", producer, name)) for name, producer in sorted(draft.inputs.items())]
        ),
        outputs=tuple(Output(name) for name in sorted(draft.outputs)),
        metrics=tuple(logged.get(section.name, ())),
        packages=tuple(sorted(packages)),
        after=tuple(dict.fromkeys(p for p, _ in draft.prev)),
        settings=replace(settings, extra_packages=()),
    )


def _with_producer_packages(step: Step, built: dict[str, Step]) -> Step:
    """A value made with a package (a pandas frame, a fitted model) needs it to be read back."""
    inherited = {package for name in set(step.upstream) if name in built for package in built[name].packages}
    return replace(step, packages=tuple(sorted(set(step.packages) | inherited)))


def _defines_pipeline_function(cells) -> bool:
    return any("@pipeline" in cell.source or "@sdk.pipeline" in cell.source for cell in cells)


def _functions_in_cells(notebook, source: str, pipeline: str | None) -> StepGraph:
    """A notebook whose cells define @step / @pipeline functions: read the cells as one module."""
    from kale_like.frontends.functions import python_to_graph

    parts, starts = [], []
    line = 1
    for cell in notebook.cells:
        if "skip" in cell.tags:
            continue
        code = strip_magics(cell.source).code
        starts.append((line, cell.index))
        parts.append(code)
        line += code.count("\n") + 1

    def locate(line: int, column: int) -> SourceLocation:
        start, index = starts[0]
        for candidate, cell_index in starts:
            if candidate <= line:
                start, index = candidate, cell_index
        return SourceLocation(source, index, None, line - start + 1, column)

    return python_to_graph(source, pipeline, text="\n".join(parts), locate=locate)
