"""Writing what the user asked for (-o, --output, --report) to the path they named.

``fileio.write_atomic`` renames a new file over the path: right for a regular
file, wrong for ``/dev/null``, ``/dev/stdout`` or a fifo, which the rename would
replace (as root, ``-o /dev/null`` would leave a regular file at /dev/null).
"""
from __future__ import annotations

import os
import stat
import sys

from ..errors import UserError
from ..fileio import write_atomic
from . import console


def is_special(path: str) -> bool:
    """An existing path that is neither a regular file nor a directory (a device, a fifo, a socket, a link)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode))


# Character devices an output may be written into (never replaced): /dev/null and terminals.
_WRITABLE_CHR = {(1, 3)}
_TTY_MAJORS = set(range(136, 144)) | {4, 5}


def write_output(path: str, text: str) -> None:
    """Write a report or an export: atomically to a regular file (``fileio.write_atomic``'s rules: never
    through a symlink, mode 0644); straight into a fifo, ``/dev/null`` or a terminal; ``/dev/stdout`` and
    ``/dev/stderr`` are leastpriv's own streams. Any other device is refused: nothing is written there."""
    if path in ("-", "/dev/stdout", "/dev/stderr"):
        stream = sys.stderr if path == "/dev/stderr" else sys.stdout
        stream.write(text)
        stream.flush()
        return
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is None or stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode):
        write_atomic(path, text)    # refuses links and directories in one line
        return
    if stat.S_ISCHR(st.st_mode):
        dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
        if dev not in _WRITABLE_CHR and dev[0] not in _TTY_MAJORS:
            raise UserError(f"{path}: a device: leastpriv writes only into /dev/null, a terminal or a fifo "
                            "(refused)")
    elif not stat.S_ISFIFO(st.st_mode):
        raise UserError(f"{path}: a block device or socket: refusing to write into it")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
        after = os.fstat(fd)
        if (after.st_dev, after.st_ino) != (st.st_dev, st.st_ino):   # swapped under us
            os.close(fd)
            raise UserError(f"{path}: changed while leastpriv opened it (refused)")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc.strerror}") from None


def refuse_special(path: str, what: str) -> None:
    """A profile or recording is only ever a regular file (it is written by an atomic rename)."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UserError(f"{path}: is a symlink: leastpriv never writes through one (name the file it points to)")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{path}: not a regular file: the {what} is written by renaming a new file over it")


def emit_report(output: str | None, text: str | None = None, render=None) -> None:
    """A report to stdout, or (``-o FILE``) atomically to FILE. ``text``: a machine format; ``render(console)``:
    a rich rendering, plain text in a file."""
    import io

    from rich.console import Console


    if render is not None:
        if output is None:
            render(console.out)
            return
        buf = io.StringIO()
        render(Console(file=buf, highlight=False, soft_wrap=True, width=4096))
        text = buf.getvalue()
    if output is None:
        console.out.file.write(text if text.endswith("\n") else text + "\n")
        console.out.file.flush()
    else:
        write_output(output, text if text.endswith("\n") else text + "\n")
