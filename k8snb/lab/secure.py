"""The lab's files and directories, safe when root runs it on a machine other users share.

The state and cache directories come from the environment (K8SNB_STATE, K8SNB_CACHE, XDG_*, HOME),
so the lab cannot trust what it finds there: a directory another user owns or may write to could
hold a planted pidfile (root would signal that PID) or a symlink (root would write through it).
Every directory the lab uses is therefore created 0700 and refused if it exists with another owner
or with group/world write permission, or is a symlink; every file holding a secret (keys,
kubeconfigs) or steering root (plans, pidfiles) is created 0600 from its first byte, never
chmod-ed afterwards, and written through no symlink.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import LabError


def checked_dir(path: Path) -> Path:
    """`path` as a directory the current user owns and no one else may write to; created 0700
    (with its missing parents) when absent. Raises LabError naming the path otherwise."""
    missing = []
    p = path
    while not os.path.lexists(p):
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
    _check(path)
    return path


def _check(path: Path) -> None:
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise LabError(f"cannot use {path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise LabError(f"refusing to use {path}: it is a symlink (the lab follows none in its own directories)")
    if not stat.S_ISDIR(st.st_mode):
        raise LabError(f"refusing to use {path}: it is not a directory")
    if st.st_uid != os.geteuid():
        raise LabError(f"refusing to use {path}: it belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}); "
                       "remove it or point K8SNB_STATE / K8SNB_CACHE elsewhere")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise LabError(f"refusing to use {path}: other users may write to it (mode {stat.S_IMODE(st.st_mode):o}); "
                       f"`chmod go-w {path}` or remove it")


def write_private(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` as a 0600 file from its first byte, replacing it atomically and
    following no symlink (a temporary file in the same directory, then rename)."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_private(path: Path) -> str:
    """Read a file the lab wrote, refusing a symlink or a file another user owns or may write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise LabError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise LabError(f"refusing to read {path}: not written by the lab (owner uid {st.st_uid}, "
                           f"mode {stat.S_IMODE(st.st_mode):o})")
        return f.read().decode(errors="replace")
