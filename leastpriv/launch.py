"""Starting a workload: the one owner of how leastpriv runs a program, for every tracer and for ``run``.

Each caller forks (the ptrace tracer seizes the child, the eBPF tracer adds it to its process table, ``run``
confines it) and then, in the child, calls :func:`child_setup` first and :func:`exec_program` last; the parent
turns the wait status into an exit status with :func:`status_of`. So the workload gets the same start and
the same exit status whoever watches it:

* **Finding the program** (:func:`resolve_command`, before anything runs): PATH is searched like execvp;
  not found -> 127, found but not executable (or a directory) -> 126, as a shell says.
* **Exec** (:func:`exec_program`): a file the kernel cannot execute (``ENOEXEC``: a script without ``#!``)
  is run by ``/bin/sh``, as execvp and shells do (the trace records it read by the shell, not executed). An exec that fails in the child exits
  :func:`exit_code_for` its errno (127 not found, 126 anything else).
* **Exit status** (:func:`status_of`): the workload's exit code, or 128+N when signal N killed it.
* **Signals** (:func:`child_setup`): the child starts with an empty signal mask and the default
  dispositions for the signals Python ignores (SIGPIPE, SIGXFSZ); what leastpriv's own caller ignored
  (nohup's SIGHUP) stays ignored. The parent passes on every signal of :data:`FORWARDED` it is sent
  (:func:`forward`), except one a terminal already delivered to the workload's process group
  (:func:`sent_by_terminal`); a trace that got one of :data:`ENDING` is marked interrupted.
* **Parent death** (:func:`child_setup`): the child asks the kernel for SIGKILL when leastpriv dies
  (``PR_SET_PDEATHSIG``) and checks leastpriv did not die before it asked: a killed leastpriv never leaves
  the workload running. (The kernel clears this on an exec that gains privileges, setuid or file
  capabilities; under ptrace ``PTRACE_O_EXITKILL`` covers every tracee as well.)
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import stat
import sys
from collections.abc import Iterable, Sequence

from .errors import UserError

TYPE_CHECKING = False
if TYPE_CHECKING:   # for annotations only: typing costs every start ~1.5 ms
    from typing import NoReturn

PR_SET_PDEATHSIG = 1
SHELL = "/bin/sh"

# The signals leastpriv passes on to the workload when it is sent one (kill(2) from a service manager,
# `timeout`, a user, a CI runner): the asynchronous signals a supervisor is asked to pass on (as tini and
# dumb-init do), without those that stop a process (job control is the terminal's business) and those the
# kernel raises for a fault. The same set for `learn --backend ptrace`, `learn --backend ebpf` and `run`.
FORWARDED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGALRM, signal.SIGWINCH)
# Of those, the ones that ask the run to end: a trace that got one is marked interrupted (it may not have
# seen all the workload would have done), and a second one kills the workload (it ignores them: the way out
# of a `learn`). SIGUSR1/2, SIGALRM and SIGWINCH are the workload's business.
ENDING = frozenset((signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP))
# The signals a terminal sends to its whole foreground process group (Ctrl-C, Ctrl-\, a resize).
TERMINAL = frozenset((signal.SIGINT, signal.SIGQUIT, signal.SIGWINCH))
# si_code of a signal a process sent (kill, sigqueue, tkill/tgkill); a terminal's is the kernel's (SI_KERNEL)
SI_USER, SI_QUEUE, SI_TKILL = 0, -1, -6


def resolve_command(argv0: str) -> str:
    """The file execve will run, looked up in PATH like execvp.

    Raises UserError with exit code 127 (not found) or 126 (found but not
    executable), as a shell would.
    """
    if not argv0:
        raise UserError("command: empty program name", exit_code=127)
    if "/" in argv0:
        candidates = [argv0]
    else:
        path = os.environ.get("PATH", os.defpath)
        candidates = [os.path.join(d or ".", argv0) for d in path.split(os.pathsep)]
    found_noexec = None
    for c in candidates:
        try:
            st = os.stat(c)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and os.access(c, os.X_OK):
            return c
        found_noexec = found_noexec or c
    if found_noexec:
        what = "is a directory" if os.path.isdir(found_noexec) else "permission denied (not executable)"
        raise UserError(f"{argv0}: {what}", exit_code=126)
    raise UserError(f"{argv0}: command not found", exit_code=127)


def run_by_shell(path: str) -> bool:
    """Whether the kernel will refuse ``path`` with ENOEXEC so that :func:`exec_program` runs it with /bin/sh:
    a regular file that starts neither with ELF's magic nor with ``#!`` (binfmt_misc formats aside).

    Predicted in the parent: when the first execve of such a file fails with EACCES (``run`` under a
    Landlock ruleset that grants it no execute right: the trace saw it read by the shell, never executed),
    :func:`exec_encoded` runs it with /bin/sh as it would after ENOEXEC.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = os.read(fd, 4)
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(head) and not head.startswith((b"\x7fELF", b"#!"))


def exit_code_for(err: int) -> int:
    """The exit status of a child whose exec failed with ``err``: 127 not found, 126 otherwise."""
    return 127 if err in (errno.ENOENT, errno.ENOTDIR) else 126


def status_of(wstatus: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N when signal N killed the process."""
    code = os.waitstatus_to_exitcode(wstatus)
    return 128 - code if code < 0 else code


def from_terminal(sig: int) -> bool:
    """Whether ``sig`` is one a terminal sends to its whole foreground process group (Ctrl-C, Ctrl-\\, a
    resize) while leastpriv, and so its workload, is that group: then the workload has it already."""
    if sig not in TERMINAL:
        return False
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


def sent_by_terminal(sig: int, si_code: int | None = None) -> bool:
    """Whether the workload has ``sig`` already because a terminal sent it to the whole foreground process
    group. Known from the signal's ``si_code`` when the caller has it (``sigtimedwait``: not sent by a
    process); without it (a Python handler), :func:`from_terminal` guesses from who is in the foreground."""
    if sig not in TERMINAL:
        return False
    if si_code is not None:
        return si_code not in (SI_USER, SI_QUEUE, SI_TKILL)
    return from_terminal(sig)


def forward(pid: int, sig: int, si_code: int | None = None) -> bool:
    """Pass ``sig``, which leastpriv was sent, on to the workload ``pid``, unless the workload has it already
    (:func:`sent_by_terminal`). True when it was sent."""
    if sent_by_terminal(sig, si_code):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    return True


def signalfd(signals: Iterable[int]) -> int:
    """A signalfd(2) for ``signals``, which the calling thread blocks: readable while one of them is pending,
    so that a select() wakes for it at once. The caller then takes them with ``signal.sigtimedwait`` (which
    gives their siginfo) and closes the fd. (Python has no signalfd; ``signal.set_wakeup_fd`` needs the
    signals unblocked and handled, and a handler gets no siginfo.)"""
    mask = (ctypes.c_uint64 * 16)()      # sigset_t: 1024 bits
    for sig in signals:
        mask[(sig - 1) // 64] |= 1 << ((sig - 1) % 64)
    fd = ctypes.CDLL(None, use_errno=True).signalfd(-1, ctypes.byref(mask), os.O_CLOEXEC | os.O_NONBLOCK)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"signalfd: {os.strerror(err)}")
    return fd


def child_setup(parent: int) -> None:
    """First thing in a forked child that will become the workload (``parent``: leastpriv's pid, taken
    before the fork). Default signal state, and death with leastpriv."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    for sig in FORWARDED:
        if signal.getsignal(sig) is not signal.SIG_IGN:   # Python's or leastpriv's handler until the exec
            signal.signal(sig, signal.SIG_DFL)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:   # leastpriv died before the prctl: nobody will watch or stop this run
        os._exit(125)


def encode(path: str, argv: Sequence[str], env: dict | None = None) -> tuple:
    """Everything execve needs, as bytes, built before the child confines itself (so that the exec itself
    allocates next to nothing once a seccomp filter is loaded)."""
    bpath = os.fsencode(path)
    bargv = [os.fsencode(a) for a in argv]
    benv = dict(os.environb) if env is None else {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
    return bpath, bargv, benv, [os.fsencode(SHELL), bpath] + bargv[1:], run_by_shell(path)


def exec_encoded(encoded: tuple) -> NoReturn:
    """Replace this (child) process by the workload (:func:`encode`'s result); a file without a known format
    is run by /bin/sh. Raises OSError when the exec fails (the caller reports it and exits
    :func:`exit_code_for` its errno)."""
    bpath, bargv, benv, shargv, shell = encoded
    try:
        os.execve(bpath, bargv, benv)
    except OSError as exc:
        if exc.errno != errno.ENOEXEC and not (shell and exc.errno == errno.EACCES):
            raise
    # like execvp: a file the kernel cannot execute is a shell script
    os.execve(shargv[0], shargv, benv)
    sys.exit(126)   # not reached: execve returns only by raising


def exec_program(path: str, argv: Sequence[str], env: dict | None = None) -> NoReturn:
    """:func:`exec_encoded` of ``path``, ``argv`` and ``env`` (default: this process's environment)."""
    exec_encoded(encode(path, argv, env))
