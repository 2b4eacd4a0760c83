"""Content hashes of artifacts: what cache keys and lineage use to say "the same bytes".

BLAKE3, not SHA-256: it is as collision-resistant for this purpose, and a 100 MB output hashes in
about a fifth of the time (SIMD and all cores; SHA-256 cannot be split across cores), which is most
of what passing a large array between two processes costs beyond writing and reading it. Hashes
carry their algorithm (`blake3:<hex>`); stores written by versions that used bare SHA-256 hex keep
their records, which simply never match a new key (each step runs once more, then hits again).
"""

from __future__ import annotations

import os
from pathlib import Path

import blake3

ALGORITHM = "blake3"
PREFIX = f"{ALGORITHM}:"
_PARALLEL_BYTES = 1 << 20  # files this large are hashed memory-mapped on every core


def hash_path(path: Path) -> str:
    """Content hash of a file or directory (names and bytes), for cache keys and lineage.

    A directory's files are taken in path order (as sorted `Path`s: component by component),
    symlinked directories not entered, each as its relative path then the digest of its bytes; a
    file is the digest of its bytes' digest; an absent path the digest of nothing."""
    return hash_below(str(path), None)  # type: ignore[return-value]  # no limit: never None


def hash_below(top: str, limit: int | None) -> str | None:
    """`hash_path`, or None as soon as the files hashed would reach `limit` bytes (before hashing
    the file that would reach it): how a run tells outputs to hash now from those to hash later."""
    digest = blake3.blake3()
    budget = [limit]
    if os.path.isdir(top):
        files = []
        for folder, _, names in os.walk(top):
            relative = os.path.relpath(folder, top)
            parts = () if relative == "." else tuple(relative.split(os.sep))
            files += [parts + (name,) for name in names if os.path.isfile(os.path.join(folder, name))]
        for parts in sorted(files):
            file_digest = _file_digest(os.path.join(top, *parts), budget)
            if file_digest is None:
                return None
            digest.update(os.path.join(*parts).encode())
            digest.update(file_digest)
    elif os.path.isfile(top):
        file_digest = _file_digest(top, budget)
        if file_digest is None:
            return None
        digest.update(file_digest)
    return PREFIX + digest.hexdigest()


LEGACY_PREFIX = "sha256:"  # stored bare, as hex, before hashes named their algorithm


def labelled(stored: str) -> str:
    """A stored hash with its algorithm shown."""
    return stored if ":" in stored or not stored else LEGACY_PREFIX + stored


def stored_prefixes(query: str) -> tuple[str, str]:
    """The forms a hash prefix a user typed (copied from `labelled`, or bare hex) is stored in."""
    if query.startswith(LEGACY_PREFIX):
        query = query[len(LEGACY_PREFIX):]
    return query, query if query.startswith(PREFIX) else PREFIX + query


def _file_digest(path: str, budget: list) -> bytes | None:
    """Digest of a file's bytes; None if the file is larger than what is left of `budget[0]` bytes
    (None: no limit), else spent from it. Large files are hashed in place, memory-mapped, on all
    cores with the GIL released: no copies, and the caller's other threads go on."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if budget[0] is not None:
            if size >= budget[0]:
                return None
            budget[0] -= size
        if size < _PARALLEL_BYTES:
            return blake3.blake3(handle.read()).digest()
    return blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(path).digest()
