"""The facts of analysed code kept in the user's cache folder, so a later process (the next compile
from the command line, after an edit) scope-analyses only the code that changed.

One SQLite file, `analysis-facts.sqlite`, a row per code text: the key is a hash of the text, the
libcst version and the source of the analysis itself (a kale_like whose analysis differs never
reads another's facts), the value the facts as JSON. Everything here is a cache: a folder that
cannot be written, a locked or damaged file, or no cache folder at all just means analysing again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import sqlite3
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from kale_like.frontends.analysis import CodeFacts
from kale_like.user_cache import cache_folder

KEPT_ROWS = 200_000  # about 200 bytes each; the least recently used beyond that go
_FORMAT = 1  # bump when what is kept for code changes


def recall(codes: Iterable[str]) -> dict[str, CodeFacts]:
    """The kept facts of those of `codes` analysed by an earlier process, by code text."""
    keys = {_key(code): code for code in set(codes)}
    found: dict[str, CodeFacts] = {}
    with _database() as connection:
        if connection is None or not keys:
            return found
        listed = list(keys)
        for start in range(0, len(listed), 500):
            chunk = listed[start:start + 500]
            rows = connection.execute(f"SELECT key, facts FROM facts WHERE key IN ({','.join('?' * len(chunk))})",
                                      chunk).fetchall()
            for key, value in rows:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    found[keys[key]] = _from_json(value)
            connection.execute(f"UPDATE facts SET used = ? WHERE key IN ({','.join('?' * len(chunk))})",
                               [time.time(), *chunk])
    return found


def remember(analysed: dict[str, CodeFacts]) -> None:
    """Keep the facts of newly analysed code for later processes."""
    if not analysed:
        return
    now = time.time()
    with _database() as connection:
        if connection is None:
            return
        connection.executemany("INSERT OR REPLACE INTO facts VALUES (?, ?, ?)",
                               [(_key(code), _to_json(facts), now) for code, facts in analysed.items()])
        (count,) = connection.execute("SELECT COUNT(*) FROM facts").fetchone()
        if count > KEPT_ROWS:
            connection.execute("DELETE FROM facts WHERE key IN (SELECT key FROM facts ORDER BY used LIMIT ?)",
                               (count - KEPT_ROWS * 4 // 5,))


@contextlib.contextmanager
def _database():
    """A connection in a transaction, or None when there is no usable cache folder or file."""
    folder = cache_folder()
    path = folder / "analysis-facts.sqlite" if folder is not None else None
    connection = _connected(path) if path is not None else None
    try:
        if connection is None:
            yield None
        else:
            with connection:
                yield connection
    except sqlite3.Error as error:  # locked for longer than the timeout, read-only, damaged
        _forget_if_damaged(path, error)
    finally:
        _closed(connection)


def _connected(path: Path) -> sqlite3.Connection | None:
    connection = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(str(path), timeout=2)
        connection.execute("PRAGMA synchronous=OFF")  # a cache: a file damaged by a crash is started anew
        connection.execute("CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, facts TEXT, used REAL)")
        return connection
    except OSError:  # no folder to keep it in: analysed again, nothing kept
        _closed(connection)
    except sqlite3.Error as error:
        _closed(connection)
        _forget_if_damaged(path, error)
    return None


def _forget_if_damaged(path: Path | None, error: sqlite3.Error) -> None:
    """Remove a file SQLite cannot read as a database (the next process starts a new one)."""
    if path is not None and ("malformed" in str(error) or "not a database" in str(error)):
        with contextlib.suppress(OSError):
            path.unlink()


def _closed(connection: sqlite3.Connection | None) -> None:
    if connection is not None:
        connection.close()


def _key(code: str) -> str:
    return hashlib.sha256(f"{_version()}\0{code}".encode("utf-8", "surrogatepass")).hexdigest()


@functools.cache
def _version() -> str:
    """What the facts of a text depend on besides the text: libcst, the analysis' own source (both
    paths: `fast_facts` and libcst's) and Python's version (whose `ast` the fast path reads)."""
    from kale_like.frontends import analysis, fast_facts, nesting

    sources = b"".join(Path(module.__file__).read_bytes() for module in (analysis, fast_facts, nesting)
                       if module.__file__)
    from importlib import metadata

    try:
        libcst = metadata.version("libcst")
    except metadata.PackageNotFoundError:
        libcst = "-"
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return f"{_FORMAT}:{libcst}:{python}:{hashlib.sha256(sources).hexdigest()}"


def _to_json(facts: CodeFacts) -> str:
    return json.dumps({"defines": sorted(facts.defines), "reads": [[n, *at] for n, at in facts.reads.items()],
                       "touches": sorted(facts.touches), "modules": sorted(facts.modules),
                       "star_import": facts.star_import})


def _from_json(text: str) -> CodeFacts:
    value = json.loads(text)
    return CodeFacts(defines=frozenset(value["defines"]),
                     reads={name: (int(line), int(column)) for name, line, column in value["reads"]},
                     touches=frozenset(value["touches"]), modules=frozenset(value["modules"]),
                     star_import=bool(value["star_import"]))
