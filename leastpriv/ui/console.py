"""The two consoles (stdout for results, stderr for status) and the live status line."""
from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:   # for annotations only: typing costs every start ~1.5 ms
    from typing import Any


class _Lazy:
    """A rich Console made on first use: importing rich costs ~30 ms, and a run whose status lines go to a
    file or a pipe (CI, scripts, ``make bench``) never needs it (info/warn/error write those plainly)."""

    def __init__(self, make: Callable[[], Any]):
        self.__dict__["_make"] = make
        self.__dict__["_console"] = None

    def _get(self):
        c = self.__dict__["_console"]
        if c is None:
            c = self.__dict__["_console"] = self._make()
        return c

    def __getattr__(self, name):
        return getattr(self._get(), name)

    def __setattr__(self, name, value):
        setattr(self._get(), name, value)


def _out():
    from rich.console import Console
    # piped or redirected: as wide as the content (a pipe has no width; rich's 80 columns would cut values with "…")
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 4096)


def _err():
    from rich.console import Console
    return Console(stderr=True, highlight=False, soft_wrap=True)


out = _Lazy(_out)
err = _Lazy(_err)

# a line rich would print unchanged on a stream that is not a terminal: printable characters only (rich
# expands tabs, drops control characters) and nothing that looks like an emoji code (":name:")
_EMOJI_LIKE = re.compile(r":\S*?:")


def _plain(prefix: str, msg: str) -> bool:
    """Write ``prefix msg`` to stderr without rich when rich's output would be exactly that text: stderr is not
    a terminal (and no FORCE_COLOR / TTY_COMPATIBLE makes rich treat it as one) and the message is plain."""
    if not msg.isprintable() or _EMOJI_LIKE.search(msg):
        return False
    env = os.environ
    if "FORCE_COLOR" in env or "TTY_COMPATIBLE" in env:
        return False
    stream = sys.stderr
    try:
        if stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    stream.write(f"{prefix} {msg}\n")
    stream.flush()
    return True


def escape(text: str) -> str:
    """rich.markup.escape (imported when needed)."""
    from rich.markup import escape as _escape
    return _escape(text)


def info(msg: str) -> None:
    """A status line on stderr; ``msg`` is plain text (paths with brackets are printed as they are)."""
    if not _plain("leastpriv:", msg):
        err.print(f"[dim]leastpriv:[/] {escape(msg)}")


def warn(msg: str) -> None:
    if not _plain("leastpriv: warning:", msg):
        err.print(f"[yellow]leastpriv: warning:[/] {escape(msg)}")


def error(msg: str) -> None:
    """The one error line: ``leastpriv: error: <msg>`` on stderr (the caller picks the exit code)."""
    if not _plain("leastpriv: error:", msg):
        err.print(f"[red]leastpriv: error:[/] {escape(msg)}", markup=True, highlight=False)


class _Elapsed:
    """The status text, with the clock read when rich draws it (so it runs between events)."""

    def __init__(self, label: str):
        self.label = label
        self.start = time.monotonic()
        self.parts = ""

    def __rich__(self) -> str:
        return f"{self.label} [dim]{time.monotonic() - self.start:5.1f}s[/] {escape(self.parts)}"


def _tty_of(fd_path: str) -> int | None:
    """The terminal device (st_rdev) an fd is open on, or None."""
    import os
    import stat

    try:
        st = os.stat(fd_path)
    except OSError:
        return None
    return st.st_rdev if stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in (4, 5, 136) else None


def workload_shares_terminal(pid: int | None = None) -> bool:
    """Does the workload write to the terminal our stderr is? ``pid`` None: a command we start
    (it inherits our stdin/stdout/stderr); else a running process (its fds 0-2)."""
    import os

    mine = _tty_of("/proc/self/fd/2")
    if mine is None:
        return False
    if pid is None:
        return True
    return any(_tty_of(f"/proc/{pid}/fd/{fd}") == mine for fd in (0, 1, 2)) or not os.path.exists(f"/proc/{pid}")


@contextmanager
def live_status(label: str, shares_terminal: bool = True) -> Iterator:
    """A one-line live status on stderr while something long runs.

    Silent when stderr is not a tty, and when the workload writes to the same
    terminal (``shares_terminal``): the workload owns it, and a status line
    redrawn over its output (or over an editor's screen) would corrupt what
    the user sees; what the run did is said after it. The clock is read at
    each redraw (rich refreshes it), so it runs between events.
    Yields a callback taking the backend's progress dict, or None when silent
    (a backend then neither builds the dict nor wakes up to draw it).
    """
    if not sys.stderr.isatty() or shares_terminal:
        yield None
        return
    text = _Elapsed(label)
    with err.status(text) as status:
        def update(d: dict) -> None:
            text.parts = "  ".join(f"{k} {v}" for k, v in d.items())
            status.update(text)
        yield update
