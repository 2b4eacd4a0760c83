"""A pipeline body (steps, loops, conditions, nested calls) -> the source of a `@dsl.pipeline`."""

from __future__ import annotations

from dataclasses import dataclass, field

from kale_like.backends.kfp.components import ComponentShape, annotation
from kale_like.errors import InternalError
from kale_like.graph.conditions import exclusive_paths, is_atom, normalize
from kale_like.graph.model import ANY, Condition, Loop, Node, PipelineCall, Ref, Step, StepGraph, Test, producers, walk
from kale_like.graph.types import TypeName


@dataclass
class _Scope:
    """Python names visible at one point of the generated pipeline function."""

    tasks: dict[str, str] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)

    def copy(self) -> _Scope:
        return _Scope(dict(self.tasks), dict(self.items))


class BodyWriter:
    """Writes the statements of pipeline functions; one instance per module."""

    def __init__(self, graph: StepGraph, shapes: dict[str, ComponentShape], functions: dict[str, str],
                 decorator: str = "dsl.pipeline"):
        self.graph = graph
        self.decorator = decorator  # the generated module's wrapper when kfp's compiler needs the channel fix
        self.shapes = shapes
        self.functions = functions  # subpipeline name -> python function name
        self.types = _output_types(graph)
        self.loops = {n.id: n for n in _all_nodes(graph) if isinstance(n, Loop)}
        from kale_like.backends.kfp.naming import MODULE_NAMES

        # task and loop variables must not shadow components, pipelines, parameters or modules
        self.taken: set[str] = set(MODULE_NAMES) | {s.function for s in shapes.values()} | set(functions.values())
        self.taken |= {p.name for p in graph.parameters} | {p.name for sub in graph.subpipelines
                                                          for p in sub.parameters}
        self.parameter_types = {p.name: p.type for p in graph.parameters}
        for sub in graph.subpipelines:
            self.parameter_types.update({p.name: p.type for p in sub.parameters})

    def pipeline_function(self, name: str, function: str, description: str, parameters, body, returns=None,
                          return_type: TypeName = ANY) -> str:
        ordered = [p for p in parameters if p.required] + [p for p in parameters if not p.required]
        signature = ", ".join(f"{p.name}: {annotation(p.type)}" + ("" if p.required else f" = {p.default!r}")
                              for p in ordered)
        result = ""
        if returns is not None:
            result = " -> Dataset" if return_type == ANY else f" -> {annotation(return_type)}"
        lines = [f"@{self.decorator}(name={name!r}, description={description!r})", f"def {function}({signature}){result}:"]
        scope = _Scope()
        exit_step = self.graph.exit_step if function == "pipeline" else None
        if exit_step is not None:
            lines += self._step(exit_step, 1, scope)
            lines.append(f"    with dsl.ExitHandler({scope.tasks[exit_step.name]}):")
            lines += self.body(body, 2, scope) or ["        pass"]
        else:
            lines += self.body(body, 1, scope)
        if returns is not None:
            lines.append(f"    return {self.expression(returns, scope)}")
        if len(lines) == 2:
            lines.append("    pass")
        return "\n".join(lines) + "\n"

    def body(self, nodes: tuple[Node, ...], depth: int, scope: _Scope) -> list[str]:
        lines: list[str] = []
        for node in nodes:
            if isinstance(node, Step):
                lines += self._step(node, depth, scope)
            elif isinstance(node, PipelineCall):
                lines += self._call(node, depth, scope)
            elif isinstance(node, Loop):
                lines += self._loop(node, depth, scope)
            elif isinstance(node, Condition):
                lines += self._condition(node, depth, scope)
        return lines

    def _variable(self, base: str) -> str:
        candidate, counter = f"{base}_task", 2
        while candidate in self.taken:
            candidate, counter = f"{base}_task_{counter}", counter + 1
        self.taken.add(candidate)
        return candidate

    def _step(self, step: Step, depth: int, scope: _Scope) -> list[str]:
        shape = self.shapes[step.name]
        pad = "    " * depth
        variable = self._variable(shape.function)
        arguments = [f"{shape.arguments[value.name]}={self.expression(value.ref, scope)}" for value in step.inputs
                     if value.ref.kind != "final_status"]
        lines = [f"{pad}{variable} = {shape.function}({', '.join(arguments)})"]
        data_parents = {p for value in step.inputs for p in producers(value.ref)}
        order_only = [scope.tasks[p] for p in step.after if p not in data_parents and p in scope.tasks]
        if order_only:
            lines.append(f"{pad}{variable}.after({', '.join(order_only)})")
        lines += [pad + line for line in task_settings(self.graph, step, variable)]
        scope.tasks[step.name] = variable
        return lines

    def _call(self, call: PipelineCall, depth: int, scope: _Scope) -> list[str]:
        pad = "    " * depth
        variable = self._variable(self.functions[call.pipeline])
        arguments = [f"{value.name}={self.expression(value.ref, scope)}" for value in call.inputs]
        lines = [f"{pad}{variable} = {self.functions[call.pipeline]}({', '.join(arguments)})"]
        data_parents = {p for value in call.inputs for p in producers(value.ref)}
        order_only = [scope.tasks[p] for p in call.after if p not in data_parents and p in scope.tasks]
        if order_only:
            lines.append(f"{pad}{variable}.after({', '.join(order_only)})")
        scope.tasks[call.name] = variable
        return lines

    def _loop(self, loop: Loop, depth: int, scope: _Scope) -> list[str]:
        if not _runs_steps(loop.body):  # a loop that runs no step does nothing; kfp would write an empty DAG
            return []
        pad = "    " * depth
        item = self._variable("item").replace("_task", "")
        limit = f", parallelism={loop.parallelism}" if loop.parallelism else ""
        lines = [f"{pad}with dsl.ParallelFor(items={self.expression(loop.items, scope)}{limit}) as {item}:"]
        inner = scope.copy()
        inner.items[loop.id] = item
        lines += self.body(loop.body, depth + 1, inner)
        scope.tasks.update({k: v for k, v in inner.tasks.items() if k not in scope.tasks})
        return lines

    def _condition(self, condition: Condition, depth: int, scope: _Scope) -> list[str]:
        pad = "    " * depth
        tests = [normalize(b.test, self.type_of) if b.test is not None else None for b in condition.branches]
        lines: list[str] = []
        inner_tasks: dict[str, str] = {}
        # kfp leaves an If/Elif chain without Else open (its ConditionBranches group is only closed by an
        # Else), swallowing what follows; such chains, and chains with a branch that runs no step (an
        # empty DAG), become exclusive nested Ifs instead, leaving the empty branches out
        runs_steps = [_runs_steps(b.body) for b in condition.branches]
        chained = (len(tests) == 1 or tests[-1] is None) and all(runs_steps)
        if chained and tests[0] is not None and all(t is None or is_atom(t) for t in tests):
            for index, (branch, test) in enumerate(zip(condition.branches, tests)):
                keyword = "dsl.If" if index == 0 else "dsl.Else" if test is None else "dsl.Elif"
                argument = "" if test is None else self.atom(test, scope)
                lines.append(f"{pad}with {keyword}({argument}):")
                inner = scope.copy()
                lines += self.body(branch.body, depth + 1, inner)
                inner_tasks.update(inner.tasks)
        else:
            for index, conjunction in exclusive_paths(tests):
                if not runs_steps[index]:
                    continue
                inner = scope.copy()
                level = depth
                for atom in conjunction:
                    lines.append(f"{'    ' * level}with dsl.If({self.atom(atom, inner)}):")
                    level += 1
                lines += self.body(condition.branches[index].body, level, inner)
                inner_tasks.update(inner.tasks)
        scope.tasks.update({k: v for k, v in inner_tasks.items() if k not in scope.tasks})
        return lines

    def atom(self, test: Test, scope: _Scope) -> str:
        left, right = test.operands
        return f"{self.expression(left, scope)} {test.op} {self.expression(right, scope)}"

    def expression(self, ref: Ref, scope: _Scope) -> str:
        """The DSL expression for a value reference."""
        if ref.kind == "parameter":
            return ref.source
        if ref.kind == "constant":
            return repr(ref.value)
        if ref.kind == "item":
            item = scope.items[ref.source]
            return f"{item}.{ref.output}" if ref.output else item
        if ref.kind == "task":
            return self._task_output(ref, scope)
        if ref.kind == "collected":
            return f"dsl.Collected({self._task_output(ref, scope)})"
        if ref.kind == "oneof":
            return "dsl.OneOf(" + ", ".join(self._task_output(o, scope) for o in ref.options) + ")"
        raise InternalError(f"unknown value reference {ref!r}")

    def _task_output(self, ref: Ref, scope: _Scope) -> str:
        variable = scope.tasks.get(ref.source)
        if variable is None:
            raise InternalError(f"task {ref.source!r} is used before it is defined")
        if ref.source in self.shapes:
            return f"{variable}.outputs[{self.shapes[ref.source].output_key(ref.output)!r}]"
        return f"{variable}.output"

    def type_of(self, ref: Ref) -> str:
        if ref.kind == "parameter":
            return self.parameter_types.get(ref.source, ANY)
        if ref.kind == "constant":
            return type(ref.value).__name__
        if ref.kind == "item":
            loop = self.loops[ref.source]
            return loop.item_type if not ref.output else ANY
        if ref.kind in ("task", "oneof"):
            first = ref if ref.kind == "task" else ref.options[0]
            return self.types.get((first.source, first.output), ANY)
        return ANY


def task_settings(graph: StepGraph, step: Step, task: str) -> list[str]:
    """The `.set_...` lines for a step's run settings (nothing the user gave is dropped)."""
    s = step.settings
    lines = []
    cache = graph.settings.cache if s.cache is None else s.cache
    if not cache:
        lines.append(f"{task}.set_caching_options(False)")
    setters = {"cpu": "cpu", "memory": "memory"}
    for resource, value in s.requests:
        lines.append(f"{task}.set_{setters[resource]}_request({value!r})")
    for resource, value in s.limits:
        if resource in setters:
            lines.append(f"{task}.set_{setters[resource]}_limit({value!r})")
        else:
            lines.append(f"{task}.set_accelerator_type({resource!r}).set_accelerator_limit({int(value)})")
    if s.retries:
        backoff = f", backoff_duration={s.retry_backoff!r}, backoff_factor=2.0" if s.retry_backoff else ""
        lines.append(f"{task}.set_retry(num_retries={s.retries}{backoff})")
    for key, value in s.env:
        lines.append(f"{task}.set_env_variable({key!r}, {value!r})")
    for secret in s.secrets:
        lines.append(
            f"kubernetes.use_secret_as_env({task}, secret_name={secret.secret!r}, "
            f"secret_key_to_env={{{secret.key!r}: {secret.env!r}}})"
        )
        # kfp-kubernetes 2.15+ writes `optional: false`, which KFP 2.14 refuses (#12216); unset means the same
        lines.append(f"{task}.platform_config['kubernetes']['secretAsEnv'][-1].pop('optional', None)")
    for key, value in s.labels:
        lines.append(f"kubernetes.add_pod_label({task}, {key!r}, {value!r})")
    for key, value in s.annotations:
        lines.append(f"kubernetes.add_pod_annotation({task}, {key!r}, {value!r})")
    for key, value in s.node_selector:
        lines.append(f"kubernetes.add_node_selector({task}, label_key={key!r}, label_value={value!r})")
    for key, value, effect in s.tolerations:
        operator = "Equal" if value else "Exists"
        value_part = f", value={value!r}" if value else ""
        lines.append(f"kubernetes.add_toleration({task}, key={key!r}, operator={operator!r}{value_part}, "
                     f"effect={effect!r})")
    if s.timeout:
        lines.append(f"kubernetes.set_timeout({task}, seconds={s.timeout})")
    if s.display_name:
        lines.append(f"{task}.set_display_name({s.display_name!r})")
    return lines


def _runs_steps(body: tuple[Node, ...]) -> bool:
    return any(isinstance(node, (Step, PipelineCall)) for node in walk(body))


def _all_nodes(graph: StepGraph):
    from kale_like.graph.model import walk

    yield from walk(graph.body)
    for sub in graph.subpipelines:
        yield from walk(sub.body)


def _output_types(graph: StepGraph) -> dict[tuple[str, str], TypeName]:
    types: dict[tuple[str, str], TypeName] = {}
    returns = {sub.name: sub.return_type for sub in graph.subpipelines}
    for node in _all_nodes(graph):
        if isinstance(node, Step):
            types.update({(node.name, o.name): o.type for o in node.outputs})
        elif isinstance(node, PipelineCall):
            types.update({(node.name, o.name): o.type for o in node.outputs})
            types.setdefault((node.name, ""), returns.get(node.pipeline, ANY))
    return types
