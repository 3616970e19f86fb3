"""Writing what the user asked for (-o, --output, --report) to the path they named.

``fileio.write_atomic`` renames a new file over the path: right for a regular
file, wrong for ``/dev/null``, ``/dev/stdout`` or a fifo, which the rename would
replace (as root, ``-o /dev/null`` would leave a regular file at /dev/null).
"""
from __future__ import annotations

import os

from ..errors import UserError
from ..fileio import write_atomic
from . import console


def is_special(path: str) -> bool:
    """An existing path that is neither a regular file nor a directory (a device, a fifo, a socket)."""
    return os.path.lexists(path) and not os.path.isfile(path) and not os.path.isdir(path)


def write_output(path: str, text: str) -> None:
    """Write a report or an export: atomically to a file, straight into a device or fifo."""
    if not is_special(path):
        write_atomic(path, text)
        return
    try:
        with open(path, "w") as fh:
            fh.write(text)
    except OSError as exc:
        raise UserError(f"{path}: cannot write: {exc.strerror}") from None


def refuse_special(path: str, what: str) -> None:
    """A profile or recording is only ever a regular file (it is written by an atomic rename)."""
    if is_special(path):
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
