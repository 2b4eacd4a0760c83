"""Repairs of the IR kfp's compiler writes for two shapes it gets wrong, made on the compiled spec.

kfp (measured on 2.17) builds a pipeline's IR when `@dsl.pipeline` runs; the result is the
`PipelineSpec` proto of the `GraphComponent` it returns (`.pipeline_spec`). The generated DSL
module declares its pipelines with `_kl_pipeline` / `_kl_subpipeline` (embedded from here), which
let kfp build the pipeline untouched and then repair that proto in place, so the module's pipeline
object is right whoever compiles it (kale_like, `python <module>.py`, or kfp's client).
Nothing in kfp is replaced.

1. Values kfp forgets to pass into nested DAGs. `compiler_utils.get_inputs_for_all_groups`
   (kfp/compiler/compiler_utils.py) decides which values each sub-DAG receives. Walking down into a
   `ParallelFor` it stops passing a value on when the value's name is a *substring* of the loop
   variable's name (`loop-item-param-2`, `xs-loop-item`, ...): a pipeline parameter called `a`,
   `t` or `p` read two levels below a loop reaches a DAG that never declared it. Nor does it pass a
   loop's list through the groups above that loop unless the loop body reads the item. The
   IR then has a task reading `componentInputParameter: pipelinechannel--a` (or a condition
   reading `inputs.parameter_values['pipelinechannel--a']`, or a loop iterating over
   `inputParameter: pipelinechannel--ys`) in a DAG component that does not declare it.
   `_kl_pass_inputs` finds every such reference and passes the value down the way kfp does when
   the names do not collide: it declares the input (with the type it has where it is made) in each
   DAG component between the reader and the place the value exists, and has each calling task feed
   it — from the parent's own input, from a task of the parent's DAG (kfp names those channels
   `pipelinechannel--<task>-<output key>`, `PipelineChannel.full_name` in
   kfp/dsl/pipeline_channel.py; the producer joins the task's `dependentTasks`), or from a pipeline
   parameter (`<name>` in a pipeline's own inputs). Where kfp was right there is nothing to add.

2. DAG names of nested pipelines. Every pipeline numbers its groups from its own counter
   (`TasksGroup._make_name_unique`, kfp/dsl/tasks_group.py: `for-loop-2`, `condition-5`), and
   `build_spec_by_group` (kfp/compiler/pipeline_spec_builder.py) writes a group's tasks into
   `components['comp-' + group name]`. When a nested pipeline is merged into its caller
   (`_merge_component_spec`) before the caller has registered a group of the same name, the
   caller's group is registered as `comp-condition-5-2` but its tasks are written into the nested
   pipeline's `comp-condition-5`: one DAG runs the other's tasks, the other none. `_kl_subpipeline`
   gives a nested pipeline's group components names of their own (`comp-inner-condition-5`) as
   soon as kfp has built it, before any caller merges it: a caller's groups, always
   `<kind>-<number>`, can no longer collide with them.

The structural check (`validate.py`) still runs on every compile and reports anything left.
"""

# --- embedded below: keep self-contained ---


def _kl_pass_inputs(spec):
    """Declare and feed the values kfp left out of nested DAGs of `spec` (a PipelineSpec, in place)."""
    import bisect
    import re

    channel = "pipelinechannel--"  # kfp's prefix for a value passed into a sub-DAG
    reference = re.compile(r"inputs\.parameter_values\[\s*['\"]([^'\"]+)['\"]\s*\]")
    components = spec.components

    def component(key):
        return spec.root if key is None else components[key]

    callers = {}  # DAG component name -> [(parent key, task name)]; the root's key is None
    keys = [None] + sorted(name for name in components if components[name].HasField("dag"))
    for key in keys:
        for task_name in sorted(component(key).dag.tasks):
            callee = component(key).dag.tasks[task_name].component_ref.name
            callers.setdefault(callee, []).append((key, task_name))

    def declared(key, kind):
        definitions = component(key).input_definitions
        return definitions.parameters if kind == "parameter" else definitions.artifacts

    def available(key, kind, name):
        """Where DAG component `key` has the value kfp calls `name`: (input, its spec) or
        (task, output key, its spec), or None."""
        inputs = declared(key, kind)
        if name in inputs:
            return ("input", name, inputs[name])
        if not name.startswith(channel):
            return None
        plain = name[len(channel):]
        if plain in inputs:  # a pipeline's own parameter (its DAGs read it as pipelinechannel--<name>)
            return ("input", plain, inputs[plain])
        tasks = component(key).dag.tasks
        for task_name in sorted(tasks, key=lambda t: (-len(t), t)):
            if not plain.startswith(task_name + "-") or tasks[task_name].component_ref.name not in components:
                continue
            outputs = components[tasks[task_name].component_ref.name].output_definitions
            outputs = outputs.parameters if kind == "parameter" else outputs.artifacts
            output = plain[len(task_name) + 1:]
            if output in outputs:
                return ("task", task_name, output, outputs[output])
        return None

    def definition(key, kind, name, depth=0):
        """The spec of `name` where the callers of DAG component `key` have it (None: nowhere)."""
        for parent, _ in callers.get(key, []) if depth < 100 else []:
            found = available(parent, kind, name)
            found = found[-1] if found else definition(parent, kind, name, depth + 1)
            if found is not None:
                return found
        return None

    def declare(key, kind, name, spec_):
        """Declare `name` in DAG component `key` with the type of `spec_`."""
        inputs = declared(key, kind)
        if kind == "parameter":
            inputs[name].parameter_type = spec_.parameter_type
        else:
            inputs[name].artifact_type.CopyFrom(spec_.artifact_type)
            if spec_.is_artifact_list:
                inputs[name].is_artifact_list = True

    def feed(key, task_name, kind, name):
        """Have task `task_name` of DAG component `key` receive `name`; False if nothing knows it."""
        task = component(key).dag.tasks[task_name]
        inputs = task.inputs.parameters if kind == "parameter" else task.inputs.artifacts
        if name in inputs:
            return False
        found = available(key, kind, name)
        if found is None:
            spec_ = definition(key, kind, name) if key is not None and name.startswith(channel) else None
            if spec_ is None:
                return False  # not made anywhere above: left for the structural check to report
            declare(key, kind, name, spec_)
            for parent, caller in callers.get(key, []):
                feed(parent, caller, kind, name)
            found = ("input", name, spec_)
        if found[0] == "input":
            if kind == "parameter":
                inputs[name].component_input_parameter = found[1]
            else:
                inputs[name].component_input_artifact = found[1]
        else:
            producer, output = found[1], found[2]
            if kind == "parameter":
                inputs[name].task_output_parameter.producer_task = producer
                inputs[name].task_output_parameter.output_parameter_key = output
            else:
                inputs[name].task_output_artifact.producer_task = producer
                inputs[name].task_output_artifact.output_artifact_key = output
            if producer not in task.dependent_tasks:
                dependencies = list(task.dependent_tasks)
                bisect.insort(dependencies, producer)
                del task.dependent_tasks[:]
                task.dependent_tasks.extend(dependencies)
        callee = components.get(task.component_ref.name)
        if callee is not None and callee.HasField("dag") and name not in declared(task.component_ref.name, kind):
            declare(task.component_ref.name, kind, name, found[-1])  # the DAG it runs declares what it gets
        return True

    def needs(task):
        """The values a task reads from its own DAG: (kind, name, fed to the task itself)."""
        wanted = []
        for name in sorted(task.inputs.parameters):
            if task.inputs.parameters[name].WhichOneof("kind") == "component_input_parameter":
                wanted.append(("parameter", task.inputs.parameters[name].component_input_parameter, False))
        for name in sorted(task.inputs.artifacts):
            if task.inputs.artifacts[name].WhichOneof("kind") == "component_input_artifact":
                wanted.append(("artifact", task.inputs.artifacts[name].component_input_artifact, False))
        wanted += [("parameter", name, True) for name in sorted(set(reference.findall(task.trigger_policy.condition)))]
        iterator = task.WhichOneof("iterator")
        if iterator == "parameter_iterator" and task.parameter_iterator.items.WhichOneof("kind") == "input_parameter":
            wanted.append(("parameter", task.parameter_iterator.items.input_parameter, True))
        if iterator == "artifact_iterator" and task.artifact_iterator.items.input_artifact:
            wanted.append(("artifact", task.artifact_iterator.items.input_artifact, True))
        callee = components.get(task.component_ref.name)
        if callee is not None and callee.HasField("dag"):  # what the DAG it runs requires
            item = getattr(task, iterator).item_input if iterator else None
            definitions = callee.input_definitions
            wanted += [("parameter", name, True) for name in sorted(definitions.parameters) if name != item
                       and not definitions.parameters[name].is_optional
                       and not definitions.parameters[name].HasField("default_value")]
            wanted += [("artifact", name, True) for name in sorted(definitions.artifacts) if name != item
                       and not definitions.artifacts[name].is_optional]
        return wanted

    for _ in range(100):  # each pass passes every missing value all the way up; the next finds none
        changed = False
        for key in keys:
            for task_name in sorted(component(key).dag.tasks):
                for kind, name, to_task in needs(component(key).dag.tasks[task_name]):
                    if to_task:
                        changed |= feed(key, task_name, kind, name)
                    elif key is not None and name not in declared(key, kind) and name.startswith(channel):
                        spec_ = definition(key, kind, name)
                        if spec_ is not None:
                            declare(key, kind, name, spec_)
                            changed = True
        if not changed:
            return


def _kl_own_group_names(spec):
    """Rename the group DAG components of a nested pipeline's `spec` after the pipeline (in place)."""
    import re

    from kfp.dsl import utils

    group = re.compile(r"comp-(for-loop|condition-branches|condition|exit-handler)-[0-9]+")
    prefix = utils.sanitize_component_name(spec.pipeline_info.name)
    renamed = {}
    for name in sorted(spec.components):
        if group.fullmatch(name) and spec.components[name].HasField("dag"):
            taken = sorted(set(spec.components) | set(renamed.values()))
            renamed[name] = utils.make_name_unique_by_adding_index(prefix + name[len("comp"):], taken, "-")
    if not renamed:
        return
    for old, new in renamed.items():
        spec.components[new].CopyFrom(spec.components[old])
        del spec.components[old]
    for component in [spec.root] + list(spec.components.values()):
        for task in component.dag.tasks.values():
            task.component_ref.name = renamed.get(task.component_ref.name, task.component_ref.name)


def _kl_pipeline(**options):
    """`dsl.pipeline(**options)`, with the IR kfp builds repaired (`_kl_pass_inputs`)."""
    from kfp import dsl

    def decorate(function):
        built = dsl.pipeline(**options)(function)
        _kl_pass_inputs(built.pipeline_spec)
        return built

    return decorate


def _kl_subpipeline(**options):
    """`_kl_pipeline` for a pipeline other pipelines call: its groups get names of their own."""

    def decorate(function):
        built = _kl_pipeline(**options)(function)
        _kl_own_group_names(built.pipeline_spec)
        return built

    return decorate
