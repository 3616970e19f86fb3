"""``python -m leastpriv`` and the ``leastpriv`` command (pyproject.toml [project.scripts])."""
from __future__ import annotations

import atexit
import gc
import os
import sys


def run() -> None:
    """The command line, started without the cycle collector and ended without tearing the interpreter down.

    Start-up (imports, the command's set-up) allocates ~100,000 objects that live until the exit and
    holds no garbage cycles worth a collection: the collector would walk them ~40 times (~5 ms of a
    short ``learn``). It is off until the command starts its own work (cli.main), except
    for ``learn`` with the ptrace backend, whose tracing loop always ran without it and whose learning
    after the run makes no cycles (cli.learn turns it back on for the other backends).

    Freeing every module and object at exit costs leastpriv ~10-15 ms (a third of the start-up of a
    short ``learn``) and does nothing a finished command needs: stdout and stderr are flushed, the
    atexit functions (weakref finalizers of temporary directories among them) run, then the process
    exits with the status ``sys.exit`` would have given. Anything unusual (a flush that fails, a thread
    still running) takes the ordinary exit instead.
    """
    gc.disable()
    try:
        from .cli import main   # after gc.disable(): importing it is most of the start-up
    except KeyboardInterrupt:   # Ctrl-C while leastpriv starts: nothing began, nothing to say (cli.main says
        os._exit(130)           # "interrupted" once it runs; before this, the interpreter's own start-up)

    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    threading = sys.modules.get("threading")   # not imported (a learn does not): no thread was started
    if not isinstance(code, int) or (threading is not None and threading.active_count() != 1):
        sys.exit(code)
    _flush_or_exit(code)
    atexit._run_exitfuncs()
    _flush_or_exit(code)   # what the atexit functions wrote
    os._exit(code & 0xFF)


def _flush_or_exit(code: int) -> None:
    """Flush stdout and stderr; if that fails, the ordinary exit (which reports it) with ``code``."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(code)


if __name__ == "__main__":
    run()
