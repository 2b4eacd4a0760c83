"""Steps that run the same code share one component in the compiled pipeline.

kfp (measured on 2.17) gives every task a component and an executor of its own, even when many
tasks call one component function: 300 `add_step` calls of one function compiled to 300 copies
of the same program (5.3 MB of YAML). The generated module therefore defines one component
function for steps whose component text is the same, and calls it under each step's name
(`_kl_named`: kfp names a task after its component, so the task names stay the step names; what
differs between the steps, their name, is a task input). kfp still writes one component and one
executor per task; `_kl_share_components` then keeps one of each set of identical ones (same
interface, same container, same Kubernetes settings) under the function's name and points the
tasks at it. The KFP backend runs tasks that share a component as it runs any task: its compiler
visits each component once and passes each task its own task spec.

The generated module embeds this code, so importing it (from kale_like or with `python`) gives the
same IR. Components with a DAG (loops, branches, nested pipelines) are never merged: the KFP
backend names some Argo templates after them, once per component.
"""

# --- embedded below: keep self-contained ---


def _kl_named(component, name, **fixed):
    """`component` under the name `name`, called with the `fixed` arguments added: a step's task."""
    import copy
    import dataclasses

    named = copy.copy(component)
    named.component_spec = dataclasses.replace(component.component_spec, name=name)
    named.name = named.component_spec.name

    def task(**arguments):
        return named(**arguments, **fixed)

    return task


def _kl_share_components(pipeline):
    """Merge identical executor components of the compiled `pipeline` (in place)."""
    from google.protobuf import json_format
    from kfp.dsl import utils

    spec = pipeline.pipeline_spec
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    platforms = [p.deployment_spec.executors for p in pipeline.platform_spec.platforms.values()]
    groups = {}
    for name in sorted(spec.components):
        component = spec.components[name]
        label = component.executor_label
        if not label or label not in executors:
            continue
        interface = type(component)()
        interface.CopyFrom(component)
        interface.executor_label = ""
        key = (interface.SerializeToString(deterministic=True),
               executors[label].SerializeToString(deterministic=True),
               tuple(p[label].SerializeToString(deterministic=True) if label in p else b"" for p in platforms))
        groups.setdefault(key, []).append(name)
    merged = [names for names in groups.values() if len(names) > 1]
    if not merged:
        return
    renamed = {}
    taken = set(spec.components) - {name for names in merged for name in names}
    taken |= {"comp-" + label[len("exec-"):] for label in executors}  # so that exec-NAME is free too
    taken -= {"comp-" + spec.components[name].executor_label[len("exec-"):] for names in merged for name in names}
    for names in merged:
        first = spec.components[names[0]]
        container = json_format.MessageToDict(executors[first.executor_label]).get("container", {})
        arguments = container.get("args", [])
        function = next((arguments[i + 1] for i, word in enumerate(arguments[:-1])
                         if word == "--function_to_execute"), names[0][len("comp-"):])
        component_name = utils.make_name_unique_by_adding_index(utils.sanitize_component_name(function),
                                                                 sorted(taken), "-")
        taken.add(component_name)
        label = "exec-" + component_name[len("comp-"):]
        old_labels = [spec.components[name].executor_label for name in names]
        executor = type(executors[old_labels[0]])()
        executor.CopyFrom(executors[old_labels[0]])
        settings = []
        for p in platforms:
            if old_labels[0] in p:
                settings.append((p, type(p[old_labels[0]])()))
                settings[-1][1].CopyFrom(p[old_labels[0]])
        shared = type(first)()
        shared.CopyFrom(first)
        shared.executor_label = label
        for name, old_label in zip(names, old_labels):  # the new names may be one of the old ones
            renamed[name] = component_name
            del spec.components[name]
            del executors[old_label]
            for p in platforms:
                if old_label in p:
                    del p[old_label]
        spec.components[component_name].CopyFrom(shared)
        executors[label].CopyFrom(executor)
        for p, value in settings:
            p[label].CopyFrom(value)
    for component in [spec.root] + list(spec.components.values()):
        if component.HasField("dag"):
            for task in component.dag.tasks.values():
                task.component_ref.name = renamed.get(task.component_ref.name, task.component_ref.name)
