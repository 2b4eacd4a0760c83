"""Give every nested DAG the inputs it reads, where kfp's compiler leaves some out.

kfp (measured on 2.17) decides which values each sub-DAG of a pipeline receives in
`compiler_utils.get_inputs_for_all_groups`. Walking down from the pipeline into a `ParallelFor`,
it stops passing a value on as soon as the value's name is a *substring* of the loop variable's
name (`loop-item-param-2`, `xs-loop-item`, ...). So a pipeline parameter called `a`, `t` or `p`,
or a loop's own list, read two levels below a loop reaches a DAG that never declared it. It also
never passes a loop's list through the groups above that loop unless the loop body reads the item.
Both produce IR that no backend can run.

The fix keeps kfp's own computation and only adds what it missed: every plain value (a pipeline
parameter or a task output, not a loop variable) a task or a condition reads goes into every DAG
between where the value is made and where it is read, exactly as kfp does when the names do not
collide; and a loop's list goes into every DAG down to the loop. Adding is safe: inputs are a set,
so where kfp was right nothing changes. kfp builds a pipeline's IR when `@dsl.pipeline` runs, so
the generated DSL module embeds this file's code and decorates its pipelines with `_kl_pipeline`,
which applies the fix only while kfp builds them: importing the module, from kale_like or with
`python`, gives the same bytes and leaves kfp unpatched afterwards.
"""

# --- embedded below: keep self-contained ---


def _kl_channel_fix():
    import contextlib

    from kfp.compiler import compiler_utils
    from kfp.dsl import pipeline_channel

    original = compiler_utils.get_inputs_for_all_groups
    plain = (pipeline_channel.PipelineParameterChannel, pipeline_channel.PipelineArtifactChannel)

    def get_inputs_for_all_groups(pipeline, task_name_to_parent_groups, group_name_to_parent_groups,
                                  condition_channels, name_to_for_loop_group):
        inputs = original(pipeline=pipeline, task_name_to_parent_groups=task_name_to_parent_groups,
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

    @contextlib.contextmanager
    def fixed():
        compiler_utils.get_inputs_for_all_groups = get_inputs_for_all_groups
        try:
            yield
        finally:
            compiler_utils.get_inputs_for_all_groups = original

    return fixed()


def _kl_pipeline(**options):
    from kfp import dsl

    def decorate(function):
        with _kl_channel_fix():
            return dsl.pipeline(**options)(function)

    return decorate
