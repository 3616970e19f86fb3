"""The eBPF backend (bcc): trace a command it starts (through :mod:`leastpriv.launch`), or attach to a
running process and its descendants, or to every process of a cgroup v2; run a :class:`.session.Session`
until the traced processes end (or a duration, a stop event, a signal), and build the Recording.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from pathlib import Path

from ... import launch
from ...errors import UserError
from ...launch import resolve_command
from ..base import Backend, Cgroup, Command, Pid, Target, TraceOptions, processes
from ..recording import Recording, RecordingBuilder
from .program import usable_reason
from .session import Session
from .targets import alive, cgroup_info, cgroup_procs, descendants, open_fds, status_field


STOP_MS = 100         # the longest wait between two looks at a stop event (container.py sets it when runc is done)
PID_CHECK_MS = 5000   # --pid: the longest wait between two looks at whether its processes are alive


class EbpfBackend(Backend):
    """bcc: in-kernel counting, capability checks, attach to a PID or a cgroup."""

    name = "ebpf"
    last_startup: float | None = None   # seconds the last BPF compile + load took (bench, status line)

    @classmethod
    def usable(cls) -> tuple[bool, str]:
        why = usable_reason()
        return (not why, why)

    def trace(self, target: Target, options: TraceOptions) -> Recording:
        why = usable_reason()
        if why:
            raise UserError(f"--backend ebpf: not usable here: {why}")
        if isinstance(target, Command):
            return self._trace_command(target, options)
        if isinstance(target, Pid):
            tgid = status_field(target.pid, "Tgid") if target.pid > 0 else None
            if tgid is None:
                raise UserError(f"--pid {target.pid}: no such process")
            if int(tgid) == os.getpid():
                raise UserError(f"--pid {target.pid}: that is leastpriv itself")
            target = Pid(int(tgid))   # a thread id means its process
            return self._trace_attached(target, options, f"pid:{target.pid}", self._cmdline(target.pid))
        if isinstance(target, Cgroup):
            _, _, canon = cgroup_info(target.path)
            return self._trace_attached(target, options, f"cgroup:{canon}", ("cgroup:" + canon,))
        raise UserError(f"--backend ebpf: cannot trace {target!r}", exit_code=2)

    @classmethod
    def _session(cls, target: Target, options: TraceOptions, builder: RecordingBuilder) -> Session:
        sess = Session(target, options, builder)
        cls.last_startup = sess.compile_seconds
        return sess

    @staticmethod
    def _cmdline(pid: int) -> tuple[str, ...]:
        try:
            parts = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            return tuple(p.decode(errors="replace") for p in parts if p) or (f"pid:{pid}",)
        except OSError:
            return (f"pid:{pid}",)

    # -- attach modes -----------------------------------------------------
    def _trace_attached(self, target, options: TraceOptions, label: str, command: tuple[str, ...]) -> Recording:
        uid = None
        if isinstance(target, Pid):
            ids = (status_field(target.pid, "Uid") or "").split()
            uid = int(ids[1]) if len(ids) > 1 else None    # the effective uid the process runs as
        builder = RecordingBuilder(command, "ebpf", target=label, uid=uid)
        sess = self._session(target, options, builder)
        stop = options.extra.get("stop_event")
        ready = options.extra.get("ready_event")
        how = ""
        # Ctrl-C / SIGTERM (launch.ENDING) end an attach-mode trace normally. In the main thread they are blocked
        # and wake the wait through a signalfd; the handlers (a flag, not KeyboardInterrupt: an exception raised
        # inside bcc's ctypes callback would be printed and swallowed) hear one the kernel gives another thread.
        signalled: list[int] = []
        old_handlers = {}
        sigfd = old_mask = None
        if threading.current_thread() is threading.main_thread():
            for sig in launch.ENDING:
                old_handlers[sig] = signal.signal(sig, lambda n, _f: signalled.append(n))
            sigfd = launch.signalfd(launch.ENDING)
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, launch.ENDING)
        # The wait ends for a signal, the kernel's news (with --pid, each exit: wake_on_exit) or the end of a
        # duration; a stop event is looked at after each wait. --pid also looks at its processes every
        # PID_CHECK_MS in case an exit's record was lost.
        cap = STOP_MS if stop is not None else PID_CHECK_MS if isinstance(target, Pid) else None
        try:
            if isinstance(target, Pid):
                # insert before listing children: a fork after insertion is followed by the kernel
                for tgid in descendants(target.pid):
                    if not sess.track(tgid):
                        builder.note(f"eBPF: could not track process {tgid}")
                builder.note("attached to running processes: what they did before the attach is not in this run")
            else:
                # processes already in the cgroup get their executable now (e.g. runc's init waiting to exec
                # the container's process), so that what they do is attributed to them, not to their next image
                for tgid in cgroup_procs(target.path):
                    sess.track(tgid)
                builder.note("cgroup mode: processes of the cgroup (and its sub-cgroups) from the attach on")
            if ready is not None:
                ready.set()
            deadline = None if options.duration is None else time.monotonic() + options.duration
            last_check = time.monotonic()
            while True:
                wait = cap
                if deadline is not None:
                    left = max(1, int((deadline - time.monotonic()) * 1000))
                    wait = left if wait is None else min(wait, left)
                if sess.poll(wait, [sigfd] if sigfd is not None else []):
                    info = signal.sigtimedwait(launch.ENDING, 0)
                    if info is not None:
                        signalled.append(info.si_signo)
                now = time.monotonic()
                if signalled:
                    how = signal.Signals(signalled[0]).name
                    break
                if stop is not None and stop.is_set():
                    how = "stopped"
                    break
                if deadline is not None and now >= deadline:
                    how = "duration"
                    break
                if isinstance(target, Pid) and (not sess.live or now - last_check > 0.5):
                    last_check = now
                    sess.live = {p for p in sess.live if alive(p)}
                    if not sess.live:
                        how = "exited"
                        break
        except KeyboardInterrupt:   # a signal the handlers did not get (another thread installed none)
            how = "SIGINT"
        except BaseException:
            sess.close()
            raise
        finally:
            if sigfd is not None:
                os.close(sigfd)
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        try:
            sess.drain()
            sess.collect()
        finally:
            sess.close()
            for sig, h in old_handlers.items():
                signal.signal(sig, h)
        if how == "exited":
            builder.note("the traced processes all exited")
        return builder.build(exit_status=None, complete=True, interrupted="")

    # -- a command --------------------------------------------------------
    def _trace_command(self, target: Command, options: TraceOptions) -> Recording:
        if not target.argv:
            raise UserError("learn: no command given")
        path = resolve_command(target.argv[0])
        keep = open_fds()
        builder = RecordingBuilder(target.argv, "ebpf", target="cmd")
        sess = self._session(target, options, builder)
        ready = options.extra.get("ready_event")
        stop = options.extra.get("stop_event")
        gate_r, gate_w = os.pipe()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        # the fast gate: the launcher installs its seccomp filter and sends the listener back (gate.py)
        lsock, lsock_child = socket.socketpair() if sess.gate is not None else (None, None)
        encoded = launch.encode(path, target.argv)   # before the fork: the child's opens would be traced
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # child: wait until tracked, then exec
            try:
                os.close(gate_w)
                os.close(err_r)
                launch.child_setup(parent)
                kept = {gate_r, err_w} | ({lsock_child.fileno()} if lsock_child is not None else set())
                for fd in open_fds() - keep - kept:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                go = os.read(gate_r, 1)
                os.close(gate_r)
                if go != b"1":
                    os._exit(125)
                if lsock_child is not None:
                    sess.gate.install_and_send(lsock_child)
                launch.exec_encoded(encoded)
            except OSError as exc:
                try:
                    os.write(err_w, str(exc.errno).encode())
                finally:
                    os._exit(launch.exit_code_for(exc.errno))
            except BaseException:
                pass
            os._exit(127)
        os.close(gate_r)
        os.close(err_w)
        if lsock_child is not None:
            lsock_child.close()
        interrupted = ""
        ending: list[int] = []      # the signals of launch.ENDING leastpriv got
        reaped = [False]            # the command's process is reaped: its pid may be another's now

        def forward(signum: int, si_code: int | None = None) -> None:
            # to the command; once it is gone, to its descendants still traced (as ptrace does)
            targets = [pid] if not reaped[0] else [p for p in sess.live if p != pid]
            if signum in launch.ENDING:
                ending.append(signum)
                if len(ending) >= 2:   # a second one: the workload ignores them; end it (as ptrace does)
                    for p in targets + [p for p in sess.live if p != pid and p not in targets]:
                        try:
                            os.kill(p, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    return
            for p in targets:
                launch.forward(p, signum, si_code)

        def take_signals() -> None:
            while (info := signal.sigtimedwait(launch.FORWARDED, 0)) is not None:
                forward(info.si_signo, info.si_code)

        # The signals are blocked in this thread and taken at each poll with their siginfo, whose si_code
        # tells a process's kill (passed on) from the terminal's (the workload has it already), as `run`
        # does; the handler hears one the kernel gave another thread of leastpriv (it guesses).
        old = {s: signal.signal(s, lambda n, _f: forward(n)) for s in launch.FORWARDED}
        sigfd = launch.signalfd(launch.FORWARDED)     # wakes the wait (select) for them
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, launch.FORWARDED)
        status = None
        try:
            sess.launcher = (pid, 0)
            if not sess.track(pid, pending=True, exe=os.path.realpath(path)):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise UserError("--backend ebpf: cannot add the command to the BPF process table")
            sess.live.add(pid)
            if ready is not None:
                ready.set()
            os.write(gate_w, b"1")
            os.close(gate_w)
            if lsock is not None:
                got = sess.gate.receive(lsock)
                lsock.close()
                if not got and not select.select([err_r], [], [], 0)[0]:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    raise UserError("--backend ebpf: the fast gate's seccomp listener did not arrive from the "
                                    "command's launcher; --full-trace does without it")
            code = os.read(err_r, 16)
            os.close(err_r)
            if code:
                os.waitpid(pid, 0)
                en = int(code)
                raise UserError(f"{target.argv[0]}: {os.strerror(en)}", exit_code=launch.exit_code_for(en))
            pidfd = os.pidfd_open(pid)
            try:
                # nothing to look at but the fds, unless there is a stop event (a status line's clock runs
                # in rich's thread)
                cap = STOP_MS if stop is not None else None
                while True:
                    if pidfd in sess.poll(cap, [pidfd, sigfd]):
                        break
                    take_signals()
                    if stop is not None and stop.is_set():
                        os.kill(pid, signal.SIGTERM)
                        interrupted = "stopped"
                        stop = None
            finally:
                os.close(pidfd)
            _, wst = os.waitpid(pid, 0)
            reaped[0] = True
            status = launch.status_of(wst)
            # like ptrace (strace -f): the run ends when every traced process has ended
            left = [p for p in sess.live if p != pid and alive(p)]
            if left and options.waiting is not None:
                procs = processes(left)
                if procs:
                    options.waiting(status, procs)
            last = 0.0
            while stop is None or not stop.is_set():
                now = time.monotonic()
                if now - last > 0.2:
                    last = now
                    sess.live = {p for p in sess.live if p != pid and alive(p)}
                    if not sess.live:
                        break
                sess.poll(200, [sigfd])
                take_signals()
            sess.drain()
            sess.collect()
        finally:
            take_signals()
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            os.close(sigfd)
            for s, h in old.items():
                signal.signal(s, h)
            sess.close()
        if ending and not interrupted:
            interrupted = signal.Signals(ending[0]).name
        survivors = {p for p in sess.live if p != pid and alive(p)}
        if survivors:
            builder.note(f"{len(survivors)} descendant processes were still running when the trace stopped")
        return builder.build(exit_status=status, complete=not interrupted, interrupted=interrupted)
