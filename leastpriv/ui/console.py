"""The two consoles (stdout for results, stderr for status) and the live status line."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.markup import escape

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def info(msg: str) -> None:
    """A status line on stderr; ``msg`` is plain text (paths with brackets are printed as they are)."""
    err.print(f"[dim]leastpriv:[/] {escape(msg)}")


def warn(msg: str) -> None:
    err.print(f"[yellow]leastpriv: warning:[/] {escape(msg)}")


def error(msg: str) -> None:
    """The one error line: ``leastpriv: error: <msg>`` on stderr (the caller picks the exit code)."""
    err.print(f"[red]leastpriv: error:[/] {escape(msg)}", markup=True, highlight=False)


@contextmanager
def live_status(label: str) -> Iterator:
    """A one-line live status on stderr while something long runs; silent when stderr is not a tty.

    Yields a callback taking the backend's progress dict.
    """
    if not sys.stderr.isatty():
        yield lambda _d: None
        return
    start = time.monotonic()
    with err.status(label) as status:
        def update(d: dict) -> None:
            parts = [f"{k} {v}" for k, v in d.items()]
            status.update(f"{label} [dim]{time.monotonic() - start:5.1f}s[/] " + "  ".join(parts))
        yield update
