"""Errors a user can act on. The CLI prints them as one line, no traceback."""
from __future__ import annotations


class UserError(Exception):
    """A problem with input the user gave: a file, an argument, the machine.

    ``exit_code`` follows README's table: 2 for bad input, 127 for a command
    that cannot be found, 126 for one that cannot be executed.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) raised like Ctrl-C's KeyboardInterrupt; the CLI exits 128+signum."""

    def __init__(self, signum: int):
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum
