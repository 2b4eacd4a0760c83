"""Compare kale_like's Workflow size estimate with the Workflows the KFP backend's Go compiler wrote.

kubeflow/pipelines keeps, for each release, IR files (`test_data/sdk_compiled_pipelines/valid/`)
and the Argo Workflows its compiler makes of them (`test_data/compiled-workflows/`, 2.15.0 on;
`backend/src/v2/compiler/testdata/*.json` and `argocompiler/testdata/*.yaml` at 2.14.0). Given a
git clone of kubeflow/pipelines, this prints per release the sizes of the system templates (what
`workflow_size._SYSTEM` holds) and, per pipeline, the golden Workflow's JSON bytes next to the
estimate (without the allowance for what the API server adds, which the golden files do not have).

    python benchmarks/workflow_size_calibration.py PATH_TO_KUBEFLOW_PIPELINES_CLONE [--tags 2.15.0,2.17.0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kale_like.backends.kfp import workflow_size  # noqa: E402

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SYSTEM = ("system-container-driver", "system-dag-driver", "system-container-executor", "system-container-impl",
          "system-importer")


def git(repo: Path, *args: str) -> str:
    if args[0] == "show":  # many small files: one `git cat-file --batch` per clone
        return _show(repo, args[1])
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


_BATCHES: dict[Path, subprocess.Popen] = {}


def _show(repo: Path, revision: str) -> str:
    """`git show REV:PATH` through one long-lived `git cat-file --batch`; CalledProcessError if absent."""
    batch = _BATCHES.get(repo)
    if batch is None:
        batch = _BATCHES[repo] = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"],
                                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    batch.stdin.write(revision.encode() + b"\n")
    batch.stdin.flush()
    header = batch.stdout.readline().split()
    if len(header) < 3 or header[1] == b"missing":
        raise subprocess.CalledProcessError(128, ["git", "show", revision])
    data = batch.stdout.read(int(header[2]))
    batch.stdout.read(1)  # the newline after the object
    return data.decode("utf-8")


def pairs(repo: Path, tag: str) -> list[tuple[str, dict, dict | None, dict]]:
    """(name, pipeline spec, platform document, golden Workflow) for every pair at `tag`."""
    found = []
    if tag.startswith("2.14"):
        goldens = [p for p in git(repo, "ls-tree", "-r", "--name-only", tag,
                                  "backend/src/v2/compiler/argocompiler/testdata").split() if p.endswith(".yaml")]
        for golden in goldens:
            stem = Path(golden).stem
            source = f"backend/src/v2/compiler/testdata/{stem}.json"
            try:
                job = json.loads(git(repo, "show", f"{tag}:{source}"))
            except subprocess.CalledProcessError:
                continue
            try:
                platform = json.loads(git(repo, "show", f"{tag}:backend/src/v2/compiler/testdata/{stem}_platform.json"))
                platform = platform if "platforms" in platform else {"platforms": {"kubernetes": platform}}
            except subprocess.CalledProcessError:
                platform = None
            spec = job.get("pipelineSpec", job)
            if "root" not in spec:  # a platform document alone: paired with another IR there
                continue
            found.append((stem, spec, platform, yaml.load(git(repo, "show", f"{tag}:{golden}"), Loader=LOADER)))
        return found
    sources = {Path(p).stem: p for p in git(repo, "ls-tree", "-r", "--name-only", tag,
                                             "test_data/sdk_compiled_pipelines/valid").split()
               if p.endswith((".yaml", ".yml"))}
    for golden in git(repo, "ls-tree", "-r", "--name-only", tag, "test_data/compiled-workflows").split():
        stem = Path(golden).stem
        if stem not in sources:
            continue
        documents = [d for d in yaml.load_all(git(repo, "show", f"{tag}:{sources[stem]}"), Loader=LOADER) if d]
        if not documents or "root" not in documents[0]:
            continue
        platform = next((d for d in documents[1:] if "platforms" in d), None)
        found.append((stem, documents[0], platform, yaml.load(git(repo, "show", f"{tag}:{golden}"), Loader=LOADER)))
    return found


def system_sizes(workflow: dict, name: str) -> dict[str, int]:
    """JSON bytes of each system template (and of the skeleton), the pipeline name left out."""
    sizes = {}
    templates = workflow["spec"]["templates"]
    for template in templates:
        if template["name"] in SYSTEM or template["name"].startswith(("retry-system-", "metadata-")):
            text = workflow_size.go_json(template)
            sizes[template["name"]] = len(text.encode()) + 1 - text.count(json.dumps(name)) * len(name)
    rest = dict(workflow, spec={k: v for k, v in workflow["spec"].items() if k not in ("templates", "arguments")})
    sizes["skeleton"] = (workflow_size.json_bytes(rest) + len(',"templates":[]') + len(',"arguments":{"parameters":[]}')
                         - len(name))
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--tags", default="2.14.0,2.15.0,2.16.0,2.17.0")
    args = parser.parse_args()
    for tag in args.tags.split(","):
        found = pairs(args.repo, tag)
        measured: dict[str, list[int]] = {}
        errors = []
        print(f"\n## {tag}: {len(found)} IR/Workflow pairs\n")
        print("| pipeline | golden bytes | estimate | error |")
        print("|---|---|---|---|")
        for stem, spec, platform, golden in found:
            name = spec.get("pipelineInfo", {}).get("name", "")
            for part, size in system_sizes(golden, name).items():
                measured.setdefault(part, []).append(size)
            actual = workflow_size.json_bytes(golden)
            try:
                estimate = workflow_size.estimate_workflow(spec, platform, tag)
            except Exception as error:  # a shape the model does not know: say so
                print(f"| {stem} | {actual:,} | {type(error).__name__}: {error} | |")
                continue
            bare = estimate.total - workflow_size.SERVER_ADDITIONS - workflow_size.PER_TEMPLATE_ANNOTATION * (
                len(golden["spec"]["templates"]))
            errors.append((bare - actual) / actual)
            print(f"| {stem} | {actual:,} | {bare:,} | {100 * (bare - actual) / actual:+.1f}% |")
        if errors:
            print(f"\nerror: median {100 * statistics.median(errors):+.1f}%, min {100 * min(errors):+.1f}%, "
                  f"max {100 * max(errors):+.1f}%, median |error| {100 * statistics.median(map(abs, errors)):.1f}%")
        print("\nsystem parts (median bytes):", {part: int(statistics.median(v)) for part, v in sorted(measured.items())})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
