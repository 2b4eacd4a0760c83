"""Repairs for two kfp compiler defects that turn valid pipelines into IR no backend can run.

1. Inputs of nested DAGs. kfp (measured on 2.17) decides which values each sub-DAG receives in
   `compiler_utils.get_inputs_for_all_groups`. Walking down into a `ParallelFor`, it stops passing
   a value on as soon as the value's name is a *substring* of the loop variable's name
   (`loop-item-param-2`, `xs-loop-item`, ...): a pipeline parameter called `a`, `t` or `p`, or a
   loop's own list, read two levels below a loop reaches a DAG that never declared it. Nor does it
   pass a loop's list through the groups above that loop unless the loop body reads the item. The
   repair keeps kfp's computation and only adds what it missed: every plain value (a parameter or
   a task output, not a loop variable) a task or a condition reads goes into every DAG between
   where it is made and where it is read, as kfp does when the names do not collide; a loop's list
   goes into every DAG down to the loop. Inputs are a set, so where kfp was right nothing changes.

2. DAG names of nested pipelines. Every pipeline numbers its groups from 1 (`for-loop-2`,
   `condition-3`). When a nested pipeline's DAG components are merged in before the caller has
   registered a group of the same name, kfp registers the caller's group under a new name
   (`comp-for-loop-2-2`) but then writes that group's tasks into the *nested* pipeline's
   `comp-for-loop-2`. The repair renames, at merge time, the nested pipeline's components whose
   names the calling pipeline's own groups will take.

kfp builds a pipeline's IR when `@dsl.pipeline` runs, so the generated DSL module embeds this
code and declares its pipelines with `_kl_pipeline`, which applies the repairs only while kfp
builds them: importing the module, from kale_like or with `python`, gives the same bytes and
leaves kfp unpatched afterwards. A kfp without these internals builds the pipeline unrepaired; the
structural check then reports any IR it cannot run.
"""

# --- embedded below: keep self-contained ---


def _kl_kfp_fixes():
    import contextlib

    from kfp.compiler import compiler_utils, pipeline_spec_builder
    from kfp.dsl import pipeline_channel, utils

    needed = (compiler_utils, "get_inputs_for_all_groups"), (compiler_utils, "_get_uncommon_ancestors"), \
        (compiler_utils, "get_all_groups"), (pipeline_spec_builder, "create_pipeline_spec"), \
        (pipeline_spec_builder, "_merge_component_spec")
    if not all(hasattr(module, name) for module, name in needed):
        return contextlib.nullcontext()  # a kfp whose compiler is laid out differently: build it as it is
    original_inputs = compiler_utils.get_inputs_for_all_groups
    original_spec = pipeline_spec_builder.create_pipeline_spec
    original_merge = pipeline_spec_builder._merge_component_spec
    plain = (pipeline_channel.PipelineParameterChannel, pipeline_channel.PipelineArtifactChannel)
    building: list = []  # per pipeline being built (innermost last): the component names of its groups

    def get_inputs_for_all_groups(pipeline, task_name_to_parent_groups, group_name_to_parent_groups,
                                  condition_channels, name_to_for_loop_group):
        inputs = original_inputs(pipeline=pipeline, task_name_to_parent_groups=task_name_to_parent_groups,
                                 group_name_to_parent_groups=group_name_to_parent_groups,
                                 condition_channels=condition_channels, name_to_for_loop_group=name_to_for_loop_group)

        def reads(reader, channel, path):
            if type(channel) not in plain or getattr(channel, "value", None):
                return
            if channel.task is None:
                for group in path:
                    inputs[group].add((channel, None))
                return
            upstream, downstream = compiler_utils._get_uncommon_ancestors(
                task_name_to_parent_groups, group_name_to_parent_groups, channel.task, reader)
            for index, group in enumerate(downstream):
                inputs[group].add((channel, upstream[0] if index == 0 else None))

        for task in pipeline.tasks.values():
            for channel in list(task.channel_inputs) + list(condition_channels[task.name]):
                if channel.task is None and getattr(task, "is_exit_handler", False):
                    continue
                reads(task, channel, task_name_to_parent_groups[task.name])
        for loop in name_to_for_loop_group.values():
            reads(loop, loop.loop_argument.items_or_pipeline_channel, group_name_to_parent_groups[loop.name])
        return inputs

    def create_pipeline_spec(pipeline, *args, **kwargs):
        groups = compiler_utils.get_all_groups(pipeline.groups[0])[1:]
        building.append({utils.sanitize_component_name(group.name) for group in groups})
        try:
            return original_spec(pipeline, *args, **kwargs)
        finally:
            building.pop()

    def merge_component_spec(main_pipeline_spec, sub_pipeline_spec):
        reserved = building[-1] if building else set()
        taken = set(main_pipeline_spec.components) | set(sub_pipeline_spec.components) | reserved
        renames = {}
        for name in sub_pipeline_spec.components:
            if name in reserved:
                renames[name] = utils.make_name_unique_by_adding_index(name, sorted(taken), "-")
                taken.add(renames[name])
        if renames:
            dags = [spec.dag for spec in sub_pipeline_spec.components.values()] + [sub_pipeline_spec.root.dag]
            for dag in dags:
                for task in dag.tasks.values():
                    task.component_ref.name = renames.get(task.component_ref.name, task.component_ref.name)
            for old, new in renames.items():
                sub_pipeline_spec.components[new].CopyFrom(sub_pipeline_spec.components[old])
                del sub_pipeline_spec.components[old]
        return original_merge(main_pipeline_spec, sub_pipeline_spec)

    @contextlib.contextmanager
    def fixed():
        compiler_utils.get_inputs_for_all_groups = get_inputs_for_all_groups
        pipeline_spec_builder.create_pipeline_spec = create_pipeline_spec
        pipeline_spec_builder._merge_component_spec = merge_component_spec
        try:
            yield
        finally:
            compiler_utils.get_inputs_for_all_groups = original_inputs
            pipeline_spec_builder.create_pipeline_spec = original_spec
            pipeline_spec_builder._merge_component_spec = original_merge

    return fixed()


def _kl_pipeline(**options):
    from kfp import dsl

    def decorate(function):
        with _kl_kfp_fixes():
            return dsl.pipeline(**options)(function)

    return decorate
