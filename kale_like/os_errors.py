"""What a failed file-system call means for the user, in words: the disk is full, permission is
denied, the file system is read-only. An `OSError`'s own text ("[Errno 28] No space left on device")
names neither the file nor what to do."""

from __future__ import annotations

import errno

_CAUSES = {
    errno.ENOSPC: ("the disk is full", "free some space there, or write somewhere else"),
    errno.EDQUOT: ("the disk quota is used up", "free some space there, or write somewhere else"),
    errno.EACCES: ("permission denied", "choose a folder you can write to"),
    errno.EPERM: ("permission denied", "choose a folder you can write to"),
    errno.EROFS: ("the file system is read-only", "choose a folder on a writable file system"),
    errno.ENOENT: ("a folder on the way does not exist and cannot be created", "check the path"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path"),
    errno.EISDIR: ("it is a folder", "give a file name"),
    errno.EEXIST: ("a file of that name stands where a folder is needed", "check the path"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
    errno.EFBIG: ("the file is larger than this system allows", "write less, or raise the file size limit"),
}


def explained(error: OSError, path: object = None) -> tuple[str, str]:
    """(what happened, what to do) for `error`, naming `path` (else the file the error names)."""
    where = path if path is not None else error.filename
    cause, fix = _CAUSES.get(error.errno or 0, (error.strerror or str(error), "check the path and the disk"))
    return f"cannot write {where}: {cause}" if where is not None else cause, fix
