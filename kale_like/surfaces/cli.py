"""`python -m kale_like SOURCE ...`: compile a notebook to a KFP pipeline from the shell.

Exit codes: 0 success, 2 a problem in the user's input (the message says where and what to do),
1 a failure of kale_like itself. Heavy modules (kfp) are imported only when a command needs them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from pathlib import Path

from kale_like.errors import InternalError, KaleLikeError, SourceLocation

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kale-like",
        description="Turn an annotated Jupyter notebook into a Kubeflow Pipelines v2 pipeline.",
    )
    parser.add_argument("source", help="the notebook (.ipynb) or Python file (.py) to convert")
    parser.add_argument("--pipeline", help="in a .py file with several @pipeline functions, the one to compile")
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
    parser.add_argument("--graph-json", action="store_true", help="print the step graph as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="print no warnings")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except KaleLikeError as error:
        print(f"error: {error.render()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except InternalError as error:
        print(f"internal error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
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
    graph = _load(source, args.pipeline)
    graph = _apply_cli_overrides(graph, args)
    if not args.quiet:
        for warning in graph.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    if args.graph_json:
        print(graph.to_json())
    if args.kfp:
        _compile(graph, source, args)
    elif not args.graph_json:
        _summary(graph)
    return 0


def _load(source: Path, pipeline: str | None = None):
    if source.suffix == ".ipynb":
        from kale_like.frontends.notebook import notebook_to_graph

        return notebook_to_graph(source, pipeline)
    if source.suffix == ".py":
        from kale_like.frontends.functions import python_to_graph

        return python_to_graph(source, pipeline)
    raise KaleLikeError(
        f"cannot read a '{source.suffix or 'extensionless'}' file",
        SourceLocation(str(source)),
        "pass a Jupyter notebook (.ipynb) or a Python file with a @pipeline function (.py)",
    )


def _apply_cli_overrides(graph, args: argparse.Namespace):
    from kale_like.graph.overrides import apply_overrides

    params = {}
    for item in args.param:
        if "=" not in item:
            raise KaleLikeError(f"--param {item}: expected NAME=VALUE", None, "e.g. --param n_estimators=50")
        key, value = item.split("=", 1)
        params[key.strip()] = value
    return apply_overrides(
        graph,
        name=args.pipeline_name,
        experiment=args.experiment,
        image=args.image,
        params=params,
    )


def _compile(graph, source: Path, args: argparse.Namespace) -> None:
    from kale_like.backends.kfp.compile import compile_graph, write_outputs

    output = Path(args.output) if args.output else source.with_suffix(".yaml")
    if output.suffix not in (".yaml", ".yml"):
        raise KaleLikeError(f"output '{output}' must end in .yaml", None, "e.g. -o pipeline.yaml")
    dsl = None if args.no_dsl else Path(args.dsl) if args.dsl else output.with_name(output.stem + "_kfp.py")
    compiled = compile_graph(graph, output.name)
    write_outputs(compiled, output, dsl)
    print(f"wrote {output} ({len(graph.all_steps)} steps)" + (f" and {dsl}" if dsl else ""))


def _summary(graph) -> None:
    print(f"pipeline {graph.settings.name}: {len(graph.steps)} steps, {len(graph.parameters)} parameters")
    for step in graph.steps:
        parents = ", ".join(step.upstream) or "-"
        print(f"  {step.name:<24} after: {parents}")
    print("add --kfp to compile it")
