"""The Kubeflow Pipelines server versions kale_like targets.

What a compiled pipeline means on a cluster is decided by the KFP backend's driver (Go), and that
changes between releases (kubeflow/pipelines `backend/src/v2/driver/`). Every place that needs to
know what the cluster will do -- the compile-time checks, the local runner's model of the driver --
takes a `ServerVersion`; the user picks it with `--kfp-version` (or notebook metadata, the
`@pipeline` option, the panel). The default is the oldest version supported, so a pipeline that
passes locally runs on every supported server.
"""

from __future__ import annotations

from dataclasses import dataclass

from kale_like.errors import KaleLikeError, SourceLocation

SUPPORTED = ("2.14", "2.15", "2.16", "2.17")  # release lines whose driver source was read and modelled


@dataclass(frozen=True, order=True, slots=True)
class ServerVersion:
    """A KFP server release line (`2.15`); patch releases of a line behave alike here."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str | ServerVersion | None, where: str = "--kfp-version",
              location: SourceLocation | None = None) -> ServerVersion:
        """`2.15`, `2.15.0` or `v2.15.1` -> 2.15; None -> the default; anything else is refused.

        `where` names the setting the value came from and `location` the file (or notebook) that set
        it, so the error says which of the four places to fix."""
        if isinstance(text, ServerVersion):
            return text
        if text is None or str(text).strip() == "":
            return DEFAULT
        parts = str(text).strip().lstrip("vV").split(".")
        try:
            major, minor = int(parts[0]), int(parts[1])
            [int(p) for p in parts[2:3]]
        except (ValueError, IndexError):
            major, minor = -1, -1
        version = cls(major, minor)
        if len(parts) > 3 or str(version) not in SUPPORTED:
            raise KaleLikeError(
                f"{where}: {text!r} is not a KFP server version kale_like supports",
                location, f"use one of {', '.join(SUPPORTED)} (the version of the KFP backend you deploy to)")
        return version

    def at_least(self, other: str) -> bool:
        """True when this server is `other` (e.g. "2.15") or newer."""
        major, minor = (int(p) for p in other.split("."))
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


DEFAULT = ServerVersion(2, 14)
LATEST = ServerVersion(2, 17)
