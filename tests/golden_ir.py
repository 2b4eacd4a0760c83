"""Golden IR: the KFP YAML each example compiles to, kept in tests/golden/ so IR changes show in review.

`python tests/golden_ir.py` compiles every example again and rewrites the golden files (and
tests/golden/VERSIONS, the versions of what writes the YAML); tests/test_golden_ir.py compiles them
and compares. Each example is compiled from a copy outside any git repository, so the lineage the
components carry holds its file name only (no commit, no dirty flag): the bytes depend on the
example and on kale_like, not on the checkout.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLES = sorted((REPO / "examples" / "pipelines").glob("*.py")) + sorted((REPO / "examples" / "notebooks").glob(
    "*.ipynb"))


def golden_path(example: Path) -> Path:
    return GOLDEN / f"{example.parent.name}-{example.stem}.yaml"


def writer_versions() -> str:
    """The versions of what writes the YAML (a newer kfp writes other bytes), a line each."""
    from kale_like.backends.kfp.kept_pipelines import writer_versions

    return writer_versions().replace(";", "\n") + "\n"


def compile_example(example: Path) -> str:
    """The YAML `python -m kale_like EXAMPLE --kfp` writes, for a copy of the example outside git."""
    from kale_like.surfaces.cli import main

    with tempfile.TemporaryDirectory(prefix="kale_like_golden_") as scratch:
        copy = Path(scratch) / example.name
        shutil.copyfile(example, copy)
        out = Path(scratch) / "out.yaml"
        code = main([str(copy), "--kfp", "-o", str(out), "--no-dsl", "-q"])
        if code != 0:
            raise RuntimeError(f"{example} did not compile (exit {code})")
        return out.read_text(encoding="utf-8")


def update() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for old in GOLDEN.glob("*.yaml"):
        old.unlink()
    for example in EXAMPLES:
        golden_path(example).write_text(compile_example(example), encoding="utf-8")
        print(f"wrote {golden_path(example).relative_to(REPO)}")
    (GOLDEN / "VERSIONS").write_text(writer_versions(), encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    update()
