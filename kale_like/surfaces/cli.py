"""`python -m kale_like SOURCE ...`: compile a notebook to a KFP pipeline from the shell.

Exit codes: 0 success, 2 a problem in the user's input (the message says where and what to do),
1 a failure of kale_like itself. Heavy modules (kfp) are imported only when a command needs them.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from kale_like.errors import InternalError, KaleLikeError, SourceLocation
from kale_like.kfp_server import ServerVersion
from kale_like.process_role import owned_by_kale_like

if TYPE_CHECKING:
    from kale_like.backends.kfp.compile_aside import CompileChild

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kale-like",
        description="Turn an annotated Jupyter notebook into a Kubeflow Pipelines v2 pipeline.",
    )
    parser.add_argument("source", help="the notebook (.ipynb) or Python file (.py) to convert")
    parser.add_argument("--pipeline", help="in a .py file with several @pipeline functions, the one to compile")
    parser.add_argument("--one-step", action="store_true",
                        help="a notebook becomes one step, whatever its tags and headings")
    parser.add_argument("--kfp", action="store_true", help="compile to KFP v2 IR YAML (and a DSL module)")
    parser.add_argument("-o", "--output", help="the YAML file to write (default: SOURCE with .yaml)")
    parser.add_argument("--dsl", help="where to write the KFP DSL module (default: OUTPUT with _kfp.py)")
    parser.add_argument("--no-dsl", action="store_true", help="do not write the DSL module")
    parser.add_argument("--pipeline-name", help="override the pipeline name")
    parser.add_argument("--experiment", help="override the experiment name")
    parser.add_argument("--image", help="default container image for steps (default: python:3.11)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="override a parameter's default"
    )
    parser.add_argument("--pip-index-url", action="append", default=[], metavar="URL",
                        help="package index the steps install from (repeat for several; air-gapped clusters)")
    parser.add_argument("--disable-caching", action="store_true", help="KFP caching off for every step by default")
    parser.add_argument("--graph-json", action="store_true", help="print the step graph as JSON")
    parser.add_argument("--kfp-version", metavar="VERSION",
                        help="the KFP server version the pipeline targets: compile-time checks, upload and --run "
                             "follow it (2.14, 2.15, 2.16, 2.17; overrides kubeflow_notebook.kfp_version and "
                             "@pipeline(kfp_version=); default: the pipeline's own, else 2.14)")
    kfp = parser.add_argument_group("Kubeflow Pipelines server (with --kfp)")
    kfp.add_argument("--host", help="KFP API address: upload a version and start a run (or a schedule)")
    kfp.add_argument("--namespace", help="namespace (multi-user KFP)")
    kfp.add_argument("--run-name", help="name of the run (default: pipeline name and time)")
    kfp.add_argument("--version-name", help="name of the uploaded pipeline version (default: name and time)")
    kfp.add_argument("--wait", action="store_true", help="follow the run; exit 1 if it does not succeed")
    kfp.add_argument("--wait-timeout", type=float, default=3600.0, help="seconds --wait waits (default 3600)")
    kfp.add_argument("--timeout", type=float, default=30.0, help="seconds any one server request may take")
    kfp.add_argument("--token-env", default="KFP_TOKEN", help="environment variable holding a bearer token")
    kfp.add_argument("--token-file", help="file holding a bearer token (e.g. a service account token)")
    kfp.add_argument("--schedule", metavar="CRON", help="create a recurring run instead: 5-field cron (UTC) or "
                                                        "KFP's 6-field form")
    kfp.add_argument("--schedule-name", help="name of the recurring run")
    kfp.add_argument("--max-concurrency", type=int, default=1, help="recurring runs allowed at once (default 1)")
    kfp.add_argument("--no-catchup", action="store_true", help="do not back-fill missed scheduled runs")
    kfp.add_argument("--disabled", action="store_true", help="create the recurring run disabled")
    kfp.add_argument("--service-account", help="Kubernetes service account the run's pods use (overrides the "
                                               "notebook's or @pipeline's service_account)")
    parser.add_argument("--max-workflow-size", metavar="SIZE",
                        help="refuse a pipeline whose Argo Workflow on the cluster would be larger (bytes, or 1.5MiB, "
                             "2MB...; default 1.5MiB, etcd's default limit; 0: no check)")
    parser.add_argument("--allow-secret-like-params", action="store_true",
                        help="accept pipeline parameters whose name or value looks like a credential")
    parser.add_argument("--run", action="store_true", help="run the pipeline locally (a .yaml too)")
    parser.add_argument("--max-workers", type=int, help="steps run at once (default: CPU count)")
    parser.add_argument("--backend", choices=("process", "thread"), default="process",
                        help="run steps in worker processes (default, CPU-bound work) or threads (I/O)")
    parser.add_argument("--no-cache", action="store_true", help="re-run every step, even unchanged ones")
    parser.add_argument("--store", default=".kale_like", help="where runs keep outputs, logs, cache, lineage")
    parser.add_argument("--collect-failed-iterations", action="store_true",
                        help="a failed loop iteration does not fail the run; Collected gets the others")
    parser.add_argument("-q", "--quiet", action="store_true", help="print no warnings")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    owned_by_kale_like()  # kfp without its client, analysis on every core (process_role.py)
    if argv[:1] == ["lineage"]:
        from kale_like.surfaces.lineage_cli import lineage_main

        return _guarded(lambda: lineage_main(argv[1:]))
    args = build_parser().parse_args(argv)
    return _guarded(lambda: _run(args))


def _guarded(action) -> int:
    """Exit codes: 2 for the user's input, 1 for failures; never a raw traceback."""
    try:
        return action()
    except KaleLikeError as error:
        print(f"error: {error.render()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except InternalError as error:
        print(f"internal error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `... --graph-json | head`: the reader is gone, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # a bug: say so briefly, keep the traceback in a file
        report = Path(tempfile.mkstemp(prefix="kale_like_crash_", suffix=".txt")[1])
        report.write_text(traceback.format_exc(), encoding="utf-8")
        print(
            f"internal error: {type(error).__name__}: {error}\n  (a kale_like bug; traceback saved to {report})",
            file=sys.stderr,
        )
        return EXIT_FAILURE


def _run(args: argparse.Namespace) -> int:
    source = Path(args.source)
    if source.suffix in (".yaml", ".yml"):
        if not args.run:
            raise KaleLikeError("a compiled pipeline can only be run here", SourceLocation(str(source)),
                                "add --run")
        from kale_like.backends.kfp.server_checks import checked_spec
        from kale_like.backends.local.ir import PipelineIR
        from kale_like.surfaces.api import typed_arguments

        ir = PipelineIR.from_file(source)
        version = ServerVersion.parse(args.kfp_version)
        _print_warnings(checked_spec(ir.spec, version, str(source), ir.platform), args)
        return _local_run(ir, typed_arguments(ir, _param_pairs(args), args.allow_secret_like_params), args, version)
    from kale_like.backends.kfp.compile_aside import CompileChild

    # a child forked now imports kfp while the source is read and analysed, then compiles it
    # (compile_aside.py); stopped unless handed the module
    with (CompileChild.start() if args.kfp or args.run else None) or contextlib.nullcontext() as child:
        graph = _load(source, args.pipeline, args.one_step)
        graph = _apply_cli_overrides(graph, args)
        from kale_like.graph.checks import check_graph

        _print_warnings(list(graph.warnings) + check_graph(graph, args.allow_secret_like_params), args)
        if args.graph_json:
            print(graph.to_json())
        if args.host and not args.kfp:
            raise KaleLikeError("--host uploads a compiled pipeline", None, "add --kfp")
        schedule = _checked_schedule(args)
        compiled = _compile(graph, source, args, child) if args.kfp else None
        if args.host:
            return _deploy(graph, args, schedule)
        if args.run:
            from kale_like.backends.kfp.server_checks import checked_spec
            from kale_like.backends.local.ir import PipelineIR
            from kale_like.surfaces.api import pipeline_ir

            version = ServerVersion.parse(graph.settings.kfp_version)
            if compiled is None:  # compiling refused what the version cannot run; say what it may get wrong
                ir = pipeline_ir(source, graph=graph, child=child)
                _print_warnings(checked_spec(ir.spec, version, str(source), ir.platform), args)
            else:
                ir = PipelineIR.from_text(compiled.yaml_text, str(source))
            steps = ([s.name for s in graph.steps if not s.generated]
                     + ([graph.exit_step.name] if graph.exit_step else []))
            return _local_run(ir, {}, args, version, steps)
    if not args.kfp and not args.graph_json:
        _summary(graph)
    return 0


def _print_warnings(warnings: list[str], args: argparse.Namespace) -> None:
    if not args.quiet:
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)


def _checked_schedule(args: argparse.Namespace):
    """The validated cron (6-field KFP form, 5-field form), before any network call."""
    if not args.schedule:
        for flag in ("schedule_name", "no_catchup", "disabled"):
            if getattr(args, flag):
                raise KaleLikeError(f"--{flag.replace('_', '-')} needs --schedule", None, "add --schedule CRON")
        return None
    if not args.host:
        raise KaleLikeError("--schedule creates a recurring run on a KFP server", None, "add --kfp --host URL")
    if args.max_concurrency < 1:
        raise KaleLikeError("--max-concurrency must be at least 1", None)
    from kale_like.graph.cron import to_kfp_cron

    return to_kfp_cron(args.schedule)


def _deploy(graph, args: argparse.Namespace, schedule) -> int:
    import time

    from kale_like.backends.kfp import deploy

    output = Path(args.output) if args.output else Path(args.source).with_suffix(".yaml")
    try:
        target = deploy.KfpTarget(args.host, args.namespace, deploy.read_token(args.token_env, args.token_file),
                                  args.timeout)
        client = deploy.connect(target)
        uploaded = deploy.upload(client, target, output, graph.settings.name, graph.settings.description,
                                 args.version_name)
        print(f"uploaded pipeline '{graph.settings.name}' version {uploaded.version_name} "
              f"(pipeline {uploaded.pipeline_id}, version {uploaded.version_id})")
        experiment = deploy.experiment_id(client, target, graph.settings.experiment or "Default")
        if schedule is not None:
            from kale_like.graph.cron import next_fire_times

            cron, plain = schedule
            name = args.schedule_name or f"{graph.settings.name}-schedule"
            job = deploy.schedule(client, target, experiment, name, cron, uploaded, {}, args.max_concurrency,
                                  args.no_catchup, not args.disabled, graph.settings.service_account or None)
            times = ", ".join(t.strftime("%Y-%m-%d %H:%M UTC") for t in next_fire_times(plain))
            state = "disabled" if args.disabled else "enabled"
            print(f"recurring run '{name}' ({job}, {state}) with cron '{cron}'; next runs: {times}")
            return 0
        run_name = args.run_name or f"{graph.settings.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_id = deploy.start_run(client, target, experiment, run_name, uploaded, {},
                                  graph.settings.service_account or None)
        print(f"started run '{run_name}' ({run_id}): {deploy.ui_link(target, run_id)}")
        if args.wait:
            state = deploy.wait_for(client, target, run_id, args.wait_timeout)
            print(f"run {run_id} finished: {state}")
            return 0 if state == "SUCCEEDED" else EXIT_FAILURE
        return 0
    except deploy.DeployError as error:
        print(f"error: {error}" + (f"\n  hint: {error.hint}" if error.hint else ""), file=sys.stderr)
        return EXIT_USER_ERROR if error.user_error else EXIT_FAILURE


def _local_run(ir, arguments: dict, args: argparse.Namespace, version: ServerVersion,
               steps: list[str] | None = None) -> int:
    """Run `ir` locally; the summary names `steps` (the user's, in graph order) when they are known."""
    import os
    import time

    from kale_like.backends.local.run import RunConfig, run_pipeline
    from kale_like.surfaces.api import lineage_context
    from kale_like.surfaces.run_report import ConsoleProgress, summary

    if args.max_workers is not None and args.max_workers < 1:
        raise KaleLikeError("--max-workers must be at least 1", None, "e.g. --max-workers 4")
    config = RunConfig(store=Path(args.store), max_workers=args.max_workers or os.cpu_count() or 1,
                       backend=args.backend, cache=not args.no_cache, echo=not args.quiet,
                       collect_failed_iterations=args.collect_failed_iterations, kfp_version=version,
                       lineage_context=lineage_context(ir.source))
    started = time.perf_counter()
    result = run_pipeline(ir, arguments, config, ConsoleProgress(quiet=args.quiet, steps=steps))
    print(summary(result, time.perf_counter() - started, steps))
    return 0 if result.succeeded else EXIT_FAILURE


def _param_pairs(args: argparse.Namespace) -> dict[str, str]:
    params = {}
    for item in args.param:
        if "=" not in item:
            raise KaleLikeError(f"--param {item}: expected NAME=VALUE", None, "e.g. --param n_estimators=50")
        key, value = item.split("=", 1)
        params[key.strip()] = value
    return params


def _load(source: Path, pipeline: str | None = None, one_step: bool = False):
    if source.suffix == ".py" and one_step:
        raise KaleLikeError("--one-step applies to notebooks", SourceLocation(str(source)),
                            "a .py file's steps are its @step functions")
    if source.suffix in (".ipynb", ".py"):
        from kale_like.surfaces.api import load_graph

        return load_graph(source, pipeline, one_step)
    raise KaleLikeError(
        f"cannot read a '{source.suffix or 'extensionless'}' file",
        SourceLocation(str(source)),
        "pass a Jupyter notebook (.ipynb) or a Python file with a @pipeline function (.py)",
    )


def _apply_cli_overrides(graph, args: argparse.Namespace):
    from kale_like.graph.overrides import apply_overrides

    params = _param_pairs(args)
    return apply_overrides(
        graph,
        name=args.pipeline_name,
        experiment=args.experiment,
        image=args.image,
        params=params,
        pip_index_urls=args.pip_index_url,
        cache=False if args.disable_caching else None,
        service_account=args.service_account,
        kfp_version=args.kfp_version,
        max_workflow_bytes=_size(args.max_workflow_size),
    )


def _size(text: str | None) -> int | None:
    if text is None:
        return None
    from kale_like.backends.kfp.workflow_size import parse_size

    return parse_size(text, "--max-workflow-size")


def _compile(graph, source: Path, args: argparse.Namespace, child: CompileChild | None = None):
    from kale_like.backends.kfp.compile_aside import compile_graph  # a module compiled before: no kfp
    from kale_like.backends.kfp.output_files import write_outputs
    from kale_like.backends.kfp.server_checks import server_warnings

    output = Path(args.output) if args.output else source.with_suffix(".yaml")
    if output.suffix not in (".yaml", ".yml"):
        raise KaleLikeError(f"output '{output}' must end in .yaml", None, "e.g. -o pipeline.yaml")
    dsl = None if args.no_dsl else Path(args.dsl) if args.dsl else output.with_name(output.stem + "_kfp.py")
    compiled = compile_graph(graph, output.name, child)  # refuses what the target KFP server cannot run
    _print_warnings(server_warnings(compiled.yaml_text, graph), args)
    write_outputs(compiled, output, dsl)
    print(f"wrote {output} ({len(graph.all_steps)} steps)" + (f" and {dsl}" if dsl else ""))
    return compiled


def _summary(graph) -> None:
    from kale_like.graph.model import Expression, Step, walk

    computed = f", {len(graph.expressions)} computed values" if graph.expressions else ""
    print(f"pipeline {graph.settings.name}: {len(graph.steps)} steps{computed}, {len(graph.parameters)} parameters")
    for node in walk(graph.body):
        if isinstance(node, Step):
            print(f"  {node.name:<24} after: {', '.join(node.upstream) or '-'}")
        elif isinstance(node, Expression):  # computed between the steps (a small generated step on a cluster)
            print(f"  {node.name:<24} computes: {node.code.strip().splitlines()[-1]}")
    if graph.exit_step is not None:
        print(f"  {graph.exit_step.name:<24} last, whatever happened (exit handler)")
    print("add --kfp to compile it")
