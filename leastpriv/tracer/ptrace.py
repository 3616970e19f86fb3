"""ptrace backend: run a command and record every syscall of every process and thread it creates.

Needs neither root nor kernel headers. The ptrace calls (PTRACE_SEIZE and its
options, PTRACE_GET_SYSCALL_INFO), the seccomp filter and process_vm_readv are
ctypes in :mod:`.ptrace_abi` (which says why not python-ptrace); the hot loop's
common stops are a small C extension (see Speed).

How it works
------------
* The child forks, waits on a pipe until the tracer has PTRACE_SEIZEd it with
  TRACEFORK|VFORK|CLONE|EXEC|SECCOMP|SYSGOOD|EXITKILL, installs a
  one-instruction classic-BPF seccomp filter returning SECCOMP_RET_TRACE, and
  execs. From then on every syscall of the workload and its descendants
  (filters are inherited) stops **once**, at a seccomp stop, where
  PTRACE_GET_SYSCALL_INFO gives (arch, nr, args): an i386 or x32 call on
  x86_64 is named in its own architecture (``syscalls.from_audit``).
* The tracer resumes with PTRACE_CONT, and asks for the syscall-exit stop
  (PTRACE_SYSCALL) only when it needs the result: the open family (a file is
  recorded only if the open succeeded; its real path is readlink
  /proc/PID/fd/RET, which resolves dirfd and relative paths), socket (fd ->
  type, to tell tcp/udp/raw at bind/connect), mkdir/unlink/rename/link/
  symlink/mknod/truncate (create/write, if it succeeded), and a sample of
  every other syscall: its first 8 calls, every call until one succeeded,
  and calls number 16, 32, 64, ... ``SyscallStat.results`` says how many
  results were observed. bind/connect addresses (AF_INET, AF_INET6, AF_UNIX
  incl. abstract) are recorded at entry: an attempt is a need.
* no_new_privs: without CAP_SYS_ADMIN the kernel only accepts a seccomp
  filter from a process with no_new_privs set, so the child sets it only when
  the first attempt fails with EACCES (i.e. not when root). It changes
  nothing a traced run could have done anyway: a traced setuid program does
  not gain privileges unless the tracer holds CAP_SYS_PTRACE.
* Where seccomp filters are unavailable (or LEASTPRIV_PTRACE_NO_SECCOMP=1)
  it falls back to PTRACE_SYSCALL, two stops per syscall (every result is
  then observed), and says so in the Recording's notes.
* The launcher's own syscalls (Python between fork and exec) are not
  recorded, except the execve that starts the workload.

CPU placement (TraceOptions.cpu)
--------------------------------
Every stop is two context switches between tracee and tracer. On the 2-vCPU
VM this was written on, a stop costs ~7 µs when both run on the same CPU and
up to ~90 µs when they are on different CPUs (the wake-up crosses CPUs, and an
idle vCPU must be woken by the hypervisor). "same" (default) pins the tracer
and the workload to the CPU the tracer is on: syscall-heavy workloads run
several times faster, but a parallel workload gets one CPU (and ``nproc``
inside it says 1). "any" leaves the scheduler alone (right for CPU-bound,
multi-threaded workloads that make few syscalls); a number pins both to that
CPU. ``make bench`` measures it. Measured here with 200,000 getppid() calls:
idle machine, strace -f took 2.4 s pinned and 38 s unpinned (design.md); with
the other CPU busy (load 3), leastpriv took 3.1-3.3 s pinned, 3.6-3.8 s
unpinned, strace 4.7 s pinned, 5.7 s unpinned: the cross-CPU penalty is the
cost of waking an idle vCPU, largest when the machine is quiet.

Speed
-----
One stop per syscall instead of strace's two. The common stops run in C
(``_ptloop.c``, a CPython extension built at install when a compiler is
there), on the same Python objects the Python code uses (the per-task
tables, entry lists, ``pending``, ``extra``, ``roots``, ``open_access``, the
builder's ``files``, the SyscallInfo struct); each entry's FAST slot says
which of its handlers the C loop does: a seccomp stop of a known task and
syscall without an entry handler (count it, sample it or PTRACE_CONT), with
``_h_args`` (count the tracked arguments' values too: ioctl request, mmap
prot, ...) or ``_h_noresult``; open/openat without O_CREAT (entry: its flags
into ``extra``; exit: readlink /proc/PID/fd/N and the file's access kinds,
when the task's root is ours and the link is an absolute path of a file that
still has a name); the exit stop of a sampled call without an exit handler
(count its result). Every other stop (new task or syscall, other handlers,
O_CREAT's existence check, a task in another root, events, signals, a failed
ptrace call, the progress tick every 1024 syscalls) comes back to the Python
loop, which handles it as it handles every stop when the module is not built
or LEASTPRIV_PTRACE_PURE=1 (tests/test_ptloop.py: both record the same). Python per stop is then
nothing: waitpid (the GIL released only when another Python thread exists), PTRACE_GET_SYSCALL_INFO into the struct,
two dict lookups, a counter, PTRACE_CONT. The pure-Python loop allocates
next to nothing either (ctypes pointers without argtypes or errno copying,
lists mutated in place, the GC off during the loop), but costs 0.7-1.4 µs of
interpreter per stop. Measured pinned to one CPU on 49,000-call storms (two
sessions, medians of 5 and 7, load 0.8-1.5; a bare C tracer doing waitpid +
GET_SYSCALL_INFO + CONT is the floor; strace -f takes two stops), per call:
getppid: C loop 3.0-3.2 µs, Python loop 3.8-4.4, floor 2.9, strace 6.3-6.8;
stat: 3.3-3.5 / 4.3-4.6 / 3.1-3.4 / 8.1-9.1. An open (+close) costs two stops
and Python handlers (the path from the tracee, /proc/PID/fd readlink at its
exit): C loop 14.1-17.7 µs, Python loop 14.7-17.9, strace 14.4-15.5 (~5 µs
of it Python). bench/run.py part 3 (pinned, median of 5, two runs with each
loop alternated, load ~1.2), learn / strace -f -o /dev/null, whole run with
the C loop (Python loop): find /usr/share 0.80x (0.93x), tar of /usr/include
0.84x (0.93x), git status of its copy 1.15x (1.22x), a pytest run 1.15x
(1.19x); each tracer's start-up differenced out (learn -- true 0.065 s,
strace 0.004 s): 0.65x (0.78x), 0.76x (0.85x), 0.68x (0.78x), 0.97x (1.00x).

What it cannot see: capability checks (the eBPF backend sees them), syscalls
another seccomp filter of the workload denies before ours asks, and a setuid
program's privileged behaviour (it runs unprivileged under trace). Processes
that outlive the command (daemons) are followed until they exit, like
``strace -f``.
"""
from __future__ import annotations

import errno
import gc
import os
import signal
import sys
import time
from ctypes import addressof, byref, sizeof
from os import readlink

from ..kernel import semantics, syscalls
from ..errors import UserError
from . import ptrace_abi as abi
from .base import Backend, Command, Target, TraceOptions
from .. import launch
from ..launch import resolve_command
from .paths import in_root, resolve_in_root, root_of
from .sockaddr import endpoint, needs_cwd, record_endpoint
from .recording import Recording, RecordingBuilder
from .base import processes

NO_SECCOMP_ENV = "LEASTPRIV_PTRACE_NO_SECCOMP"
PURE_ENV = "LEASTPRIV_PTRACE_PURE"   # set: the pure-Python loop even where the C one is built
SAMPLE_FIRST = 8
PROGRESS_EVERY = 0.25
FORWARDED = launch.FORWARDED   # passed on to the workload (the same set for every starter)
STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
RESTART_ERRNOS = frozenset((512, 513, 514, 516))   # ERESTARTSYS.. : kernel-internal, the call is restarted
AT_FDCWD32 = 0xFFFFFF9C
O_CREAT, O_TMPFILE, O_ACCMODE = os.O_CREAT, os.O_TMPFILE, os.O_ACCMODE
NO_RESULT = frozenset(("exit", "exit_group", "rt_sigreturn", "sigreturn", "restart_syscall", "vfork"))

# entry list slots (a list per (exe, arch, nr): mutated in place in the hot loop)
COUNT, RESULTS, OK, ERRNOS, NAME, ON_ENTRY, ON_EXIT, ARGIDX, ARGS, IGNORE, FAST = range(11)
# e[FAST]: which of the entry's handlers the C loop does itself (_ptloop.c's F_*; the Python loop ignores it):
# none, no entry handler, _h_noresult, _h_args, on_open/_x_open of open/openat with the flags in args[FAST - 8]
FAST_PYTHON, FAST_PLAIN, FAST_NORESULT, FAST_ARGS, FAST_OPEN = 0, 1, 2, 3, 8

# calls that name paths without opening them: (dirfd index or None, path index, access) per path (semantics table)
_PATH_OPS = {name: tuple((pa.dirfd, pa.index, pa.access) for pa in row.paths)
             for name, row in semantics.SEMANTICS.items() if row.kind == "pathop"}
_OPENS = frozenset(name for name, row in semantics.SEMANTICS.items() if row.kind in ("open", "creat", "openat2"))
_EXECS = frozenset(name for name, row in semantics.SEMANTICS.items() if row.kind == "exec")


def _c_loop():
    """The C twin of the hot loop's common stops (_ptloop.c), or None: not built (no compiler when
    installed), built from another version of _ptloop.c (PROTOCOL) or for another struct layout, or
    LEASTPRIV_PTRACE_PURE set."""
    if os.environ.get(PURE_ENV):
        return None
    try:
        from . import _ptloop
    except ImportError:
        return None
    ok = getattr(_ptloop, "PROTOCOL", 0) == 2 and _ptloop.INFO_SIZE == sizeof(abi.SyscallInfo) \
        and (_ptloop.N_SLOTS, _ptloop.F_PLAIN, _ptloop.F_NORESULT, _ptloop.F_ARGS, _ptloop.F_OPEN) \
        == (FAST + 1, FAST_PLAIN, FAST_NORESULT, FAST_ARGS, FAST_OPEN)
    return _ptloop if ok else None


def _privileged_exe(path: str) -> str:
    """'set-user-ID root' (etc.) when exec'ing ``path`` would gain privileges (an owner or group other
    than ours, or file capabilities); '' otherwise."""
    import pwd
    import grp
    import stat as _stat

    try:
        st = os.stat(path)
    except OSError:
        return ""
    what = []
    if st.st_mode & _stat.S_ISUID and st.st_uid != os.geteuid():
        try:
            what.append(f"set-user-ID {pwd.getpwuid(st.st_uid).pw_name}")
        except KeyError:
            what.append(f"set-user-ID {st.st_uid}")
    if st.st_mode & _stat.S_ISGID and st.st_mode & _stat.S_IXGRP and st.st_gid != os.getegid():
        try:
            what.append(f"set-group-ID {grp.getgrgid(st.st_gid).gr_name}")
        except KeyError:
            what.append(f"set-group-ID {st.st_gid}")
    try:
        if os.getxattr(path, "security.capability"):
            what.append("given file capabilities")
    except OSError:
        pass
    return " and ".join(what)


def _no_new_privs(pid) -> bool:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            return b"\nNoNewPrivs:\t1" in f.read()
    except OSError:
        return False


def _current_cpu() -> int:
    with open("/proc/self/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2:].split()[36])


class PtraceBackend(Backend):
    """Starts a command under ptrace with seccomp-assisted stops (see module docstring)."""

    name = "ptrace"

    @classmethod
    def usable(cls) -> tuple[bool, str]:
        if not sys.platform.startswith("linux"):
            return False, "ptrace backend needs Linux"
        if not abi.syscall_info_supported():
            return False, "needs PTRACE_GET_SYSCALL_INFO (Linux >= 5.3)"
        try:
            with open("/proc/sys/kernel/yama/ptrace_scope") as f:
                if f.read().strip() == "3":
                    return False, "ptrace is disabled (kernel.yama.ptrace_scope=3)"
        except OSError:
            pass
        return True, ""

    def trace(self, target: Target, options: TraceOptions) -> Recording:
        if not isinstance(target, Command):
            raise UserError("--backend ptrace traces only a command it starts; attaching to a PID or a cgroup "
                            "needs --backend ebpf (as root)")
        if not target.argv:
            raise UserError("learn: no command given")
        path = resolve_command(target.argv[0])
        return _Session(list(target.argv), path, options).run()


class _Session:
    def __init__(self, argv: list[str], path: str, options: TraceOptions):
        self.argv = argv
        self.path = path
        self.options = options
        self.b = RecordingBuilder(argv, "ptrace", "cmd")
        self.info = abi.SyscallInfo()
        self.args = self.info.args                 # a view of info's argument array (read in place)
        self.open_access: dict[tuple[int, bool], tuple[str, ...]] = {}   # (flags, created) -> access kinds
        self.mem = abi.MemReader()
        self.native_audit = syscalls.audit_arch_value(syscalls.host_arch())
        self.tables: dict[int, dict] = {}          # tid -> syscall table of its current executable
        self.exe_tables: dict[str, dict] = {}      # exe -> table
        self.prelaunch: dict = {}                  # the root before its first exec
        self.first_exe = ""
        self.nnp = False
        self.nnp_named: set[str] = set()
        self.pending: dict[int, list] = {}         # tid -> entry awaiting its exit stop
        self.extra: dict[int, object] = {}         # tid -> handler data for the exit stop
        self.exec_arg: dict[int, str] = {}         # tid -> execve path argument
        self.sock_types: dict[str, tuple[int, int]] = {}   # "socket:[ino]" -> (domain, type)
        self.roots: dict[int, str | None] = {}     # tid -> its root as ours sees it (paths are recorded inside it)
        self.root = 0
        self.exit_status: int | None = None
        self.interrupted = ""
        self.signals_received = 0
        self.deferred_sig = 0
        self.deferred: threading.Timer | None = None   # forwards deferred_sig if no tracee reported it
        self.delivered: dict[int, float] = {}     # signal -> when a tracee last had it delivered
        self.fallback = False
        self.tasks_seen = 0
        self.nsys = 0
        self.next_progress = 0.0
        self._handlers = self._make_handlers()

    # ------------------------------------------------------------------ run
    def run(self) -> Recording:
        b = self.b
        # placed first: the probe's thread and the workload then start on this CPU (waking another, idle,
        # vCPU for them cost ~3-5 ms of every start here)
        old_affinity = self._place_cpu()
        try:
            self.fallback = bool(os.environ.get(NO_SECCOMP_ENV))
            if self.fallback:
                b.note(f"seccomp-assisted tracing disabled ({NO_SECCOMP_ENV}=1): PTRACE_SYSCALL, two stops per "
                       f"syscall")
            else:
                ok, why = abi.seccomp_filter_works()
                if not ok:
                    self.fallback = True
                    b.note(f"seccomp filters unavailable ({why}): fell back to PTRACE_SYSCALL, two stops per syscall")
            prog, keep = self._filter()
        except BaseException:
            if old_affinity is not None:
                os.sched_setaffinity(0, old_affinity)
            raise
        encoded = launch.encode(self.path, self.argv, os.environ.copy())   # before the fork: nothing traced
        r, w = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:   # pragma: no cover - child
            self._child(r, w, prog, parent, encoded)
        os.close(r)
        self.root = pid
        old_handlers = {}
        try:
            try:
                abi.seize(pid, abi.PTRACE_O_TRACESYSGOOD | abi.PTRACE_O_TRACEFORK | abi.PTRACE_O_TRACEVFORK
                          | abi.PTRACE_O_TRACECLONE | abi.PTRACE_O_TRACEEXEC | abi.PTRACE_O_TRACESECCOMP
                          | abi.PTRACE_O_EXITKILL)
            except Exception as exc:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise UserError(f"ptrace: cannot trace the command: {exc}") from None
            if self.fallback:
                abi.ptrace(abi.PTRACE_INTERRUPT, pid)
            self.tables[pid] = self.prelaunch
            self.tasks_seen = 1
            for s in FORWARDED:
                old_handlers[s] = signal.signal(s, self._on_signal)
            os.write(w, b"g")
            os.close(w)
            w = -1
            gc_was_enabled = gc.isenabled()
            gc.disable()        # the loop makes no cycles; collections would only cost time
            try:
                self._loop()
            except BaseException as exc:   # tracer bug or KeyboardInterrupt from elsewhere: never leave tracees
                self._kill_all()
                self._drain()
                if isinstance(exc, KeyboardInterrupt):
                    self.interrupted = self.interrupted or "SIGINT"
                else:
                    import traceback
                    traceback.print_exc(file=sys.stderr)
                    self.interrupted = f"tracer error: {type(exc).__name__}: {exc}"
            finally:
                if gc_was_enabled:
                    gc.enable()
        finally:
            if w >= 0:
                os.close(w)
            if self.deferred is not None:
                self.deferred.cancel()
            for s, h in old_handlers.items():
                signal.signal(s, h)
            if old_affinity is not None:
                os.sched_setaffinity(0, old_affinity)
            del keep
        return self._build()

    def _filter(self):
        """(prog, keepalive): SECCOMP_RET_TRACE for every call, or with a baseline (options.known) the fast
        gate's filter, which lets the kernel allow the calls the baseline explains (tracer/fastpath.py)."""
        known = self.options.known
        if known is None or self.fallback:
            if known is not None:
                self.b.note("fast gate: unavailable without seccomp filters: every call was stopped at")
            return abi.make_filter()
        from . import fastpath
        ff = fastpath.build(known, frozenset(self._handlers), abi.SECCOMP_RET_TRACE)
        self.b.note(ff.describe())
        return abi.filter_from_bytes(ff.bpf)

    def _child(self, r, w, prog, parent, encoded):   # pragma: no cover - runs in the forked child
        try:
            os.close(w)
            launch.child_setup(parent)
            if os.read(r, 1) != b"g":       # the tracer died before seizing us
                os._exit(127)
            os.close(r)
            if not self.fallback:
                err = abi.install_filter(prog)
                if err:
                    os.write(2, f"leastpriv: cannot install the seccomp filter: {os.strerror(err)}\n".encode())
                    os._exit(126)
            launch.exec_encoded(encoded)
        except OSError as exc:
            try:
                os.write(2, f"leastpriv: {self.argv[0]}: {exc.strerror}\n".encode())
            finally:
                os._exit(launch.exit_code_for(exc.errno))
        finally:
            os._exit(127)

    def _place_cpu(self):
        cpu = self.options.cpu
        if cpu == "any":
            return None
        allowed = os.sched_getaffinity(0)
        if cpu == "same":
            want = _current_cpu()
            if want not in allowed:
                want = min(allowed)
        else:
            try:
                want = int(cpu)
            except ValueError:
                raise UserError(f"--cpu: expected same, any or a CPU number, got {cpu!r}") from None
            if want not in allowed:
                raise UserError(f"--cpu: CPU {want} is not available here (allowed: "
                                f"{', '.join(map(str, sorted(allowed)))})")
        os.sched_setaffinity(0, {want})
        return allowed

    # ------------------------------------------------------------ signals
    def _on_signal(self, sig, frame):
        if sig in launch.ENDING:
            self.signals_received += 1
            if not self.interrupted:
                self.interrupted = signal.Signals(sig).name
            if self.signals_received >= 2:
                self._kill_all()
                return
        if launch.sent_by_terminal(sig):
            # Most likely typed at the terminal (or a resize): the workload (same foreground
            # process group) got it too. Forward only if no tracee reports it within 200 ms
            # (before or after this handler runs). A timer thread, not SIGALRM: that is forwarded.
            if time.monotonic() - self.delivered.get(sig, -1e9) < 0.2:
                return
            self.deferred_sig = sig
            import threading   # here, on a signal from the terminal: not on every start (~1 ms)

            # a local timer: a second signal's handler can run inside this one (at any Python call: the
            # import, the daemon setter) and replace self.deferred, which must then not be started twice
            t = threading.Timer(0.2, self._on_alarm)
            t.daemon = True
            old, self.deferred = self.deferred, t
            if old is not None:
                old.cancel()
            t.start()
            return
        self._forward(sig)

    def _on_alarm(self):
        if self.deferred_sig:
            s, self.deferred_sig = self.deferred_sig, 0
            self._forward(s)

    def _forward(self, sig):
        targets = [self.root] if self.exit_status is None else list(self.tables)
        for pid in targets:
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def _kill_all(self):
        for pid in list(self.tables):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def _drain(self):
        """Reap every tracee (after _kill_all): nothing is left stopped or orphaned."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(-1, abi.WALL)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if os.WIFSTOPPED(status):
                try:
                    os.kill(pid, signal.SIGKILL)
                    abi.raw_ptrace(abi.PTRACE_CONT, pid, 0, 0)
                except OSError:
                    pass
            else:
                self._gone(pid, status)

    # ------------------------------------------------------------ hot loop
    def _loop(self):
        """Every stop until no tracee is left. The common stops (a known call without a handler, the exit
        of a sampled one) are handled by the C twin of this loop (_ptloop.c) when it is built, and
        everything else by the same code below, as the pure-Python loop handles every stop."""
        waitpid = os.waitpid
        WALL = abi.WALL
        pt = abi.fast_ptrace
        FAILED = abi.FAST_FAILED
        GSI = abi.PTRACE_GET_SYSCALL_INFO
        CONT = abi.PTRACE_CONT
        SYSCALL = abi.PTRACE_SYSCALL
        S_SECCOMP = abi.STATUS_SECCOMP
        S_SYSCALL = abi.STATUS_SYSCALL
        info = self.info
        iaddr = byref(info)
        isz = sizeof(info)
        tables = self.tables
        pending = self.pending
        native = self.native_audit
        new_entry = self._new_entry
        new_task = self._new_task
        slow = self._slow_stop
        fallback = self.fallback
        resume_after_exit = SYSCALL if fallback else CONT
        fast = None if fallback else _c_loop()
        if fast is not None:
            run_c, C_INFO, C_WAITED, C_TICK, C_FAILED = fast.run, fast.INFO, fast.WAITED, fast.TICK, fast.FAILED
            iaddr_int = addressof(info)
            extra, roots, open_access, files = self.extra, self.roots, self.open_access, self.b.files
        self.next_progress = time.monotonic() + PROGRESS_EVERY
        got = False      # info holds this stop's syscall info already (the C loop asked for it)
        nsys = 0
        try:
            while True:
                if fast is not None:
                    why, pid, status, nsys = run_c(iaddr_int, tables, pending, native, SAMPLE_FIRST,
                                                   RESTART_ERRNOS, extra, roots, open_access, files, nsys)
                    if why > C_INFO:
                        if why == C_TICK:
                            self._tick(nsys)
                        elif why == C_FAILED:
                            self._ptrace_failed(pid, status)   # status: the request that failed
                        else:
                            break        # no tracee left
                        continue
                    got = why == C_INFO
                else:
                    try:
                        pid, status = waitpid(-1, WALL)
                    except ChildProcessError:
                        break
                if status != S_SECCOMP and status != S_SYSCALL:
                    slow(pid, status)
                    continue
                if not got and pt(GSI, pid, isz, iaddr) == FAILED and not self._gsi_failed(pid):
                    continue
                if status == S_SYSCALL and info.op != 1:    # exit stop (or no info)
                    e = pending.pop(pid, None)
                    if e is not None and info.op == 2:
                        rval = info.rval
                        if -4096 < rval < 0:
                            if -rval not in RESTART_ERRNOS:
                                e[RESULTS] += 1
                                d = e[ERRNOS]
                                d[-rval] = d.get(-rval, 0) + 1
                        else:
                            e[RESULTS] += 1
                            e[OK] += 1
                        if e[ON_EXIT] is not None:
                            e[ON_EXIT](pid, e, rval)
                    if pt(resume_after_exit, pid, 0, 0) == FAILED:
                        self._ptrace_failed(pid, resume_after_exit)
                    continue
                # syscall entry (seccomp stop, or entry stop in fallback mode)
                nr = info.nr
                arch = info.arch
                tab = tables.get(pid)
                if tab is None:
                    tab = new_task(pid)
                e = tab.get(nr if arch == native else (arch, nr))
                if e is None:
                    e = new_entry(tab, arch, nr)
                c = e[COUNT] = e[COUNT] + 1
                h = e[ON_ENTRY]
                if h is not None:
                    req = h(pid, e, info)
                else:
                    req = c <= SAMPLE_FIRST or not e[OK] or not (c & (c - 1))
                if req or fallback:
                    pending[pid] = e
                    if pt(SYSCALL, pid, 0, 0) == FAILED:
                        self._ptrace_failed(pid, SYSCALL)
                elif pt(CONT, pid, 0, 0) == FAILED:
                    self._ptrace_failed(pid, CONT)
                nsys += 1
                if not nsys & 1023:
                    self._tick(nsys)
        finally:
            self.nsys = nsys

    def _tick(self, nsys):
        """Every 1024 syscalls: report progress if PROGRESS_EVERY has passed."""
        t = time.monotonic()
        if t >= self.next_progress:
            self.next_progress = t + PROGRESS_EVERY
            self.nsys = nsys
            if self.options.progress is not None:
                self.options.progress(self._progress())

    def _progress(self) -> dict:
        distinct = {e[NAME] for t in self.exe_tables.values() for e in t.values()}
        return {"processes": len(self.tables), "syscalls": self.nsys, "distinct": len(distinct)}

    def _ptrace_failed(self, pid, req=None, data=0):
        """A hot-loop ptrace call failed: learn errno by repeating it through the errno-keeping pointer."""
        if req is not None:
            if abi.raw_ptrace(req, pid, 0, data) != abi.PTRACE_FAILED:
                return True
        err = abi.get_errno()
        if err != errno.ESRCH:   # ESRCH: killed meanwhile (SIGKILL); its exit is reported next
            raise OSError(err, f"ptrace on {pid}: {os.strerror(err)}")
        return False

    def _gsi_failed(self, pid) -> bool:
        """PTRACE_GET_SYSCALL_INFO failed in the hot loop: retry with errno kept; False when the task is gone."""
        if abi.raw_ptrace(abi.PTRACE_GET_SYSCALL_INFO, pid, sizeof(self.info), addressof(self.info)) \
                != abi.PTRACE_FAILED:
            return True
        return self._ptrace_failed(pid)

    def _resume(self, pid, sig=0, req=None):
        if req is None:
            req = abi.PTRACE_SYSCALL if (self.fallback or pid in self.pending) else abi.PTRACE_CONT
        if abi.raw_ptrace(req, pid, 0, sig) == abi.PTRACE_FAILED:
            self._ptrace_failed(pid)

    # ------------------------------------------------------------ slow path
    def _slow_stop(self, pid, status):
        if pid not in self.tables and (os.WIFSTOPPED(status)):
            self._new_task(pid)
        if os.WIFSTOPPED(status):
            sig = (status >> 8) & 0xFF
            event = status >> 16
            if event:
                if event == abi.PTRACE_EVENT_EXEC:
                    self._on_exec(pid)
                elif event == abi.PTRACE_EVENT_STOP and sig in STOP_SIGNALS:
                    # group-stop: keep it stopped (job control works) but hear about SIGCONT
                    if abi.raw_ptrace(abi.PTRACE_LISTEN, pid, 0, 0) != abi.PTRACE_FAILED:
                        return
                    if abi.get_errno() == errno.ESRCH:
                        return
                    # EIO: not a group-stop after all (e.g. an interrupt stop): just resume it
                self._resume(pid)       # fork/vfork/clone/exec events, new-task and interrupt stops
                return
            # signal-delivery stop: deliver the signal
            if sig in FORWARDED:
                self.delivered[sig] = time.monotonic()
                if sig == self.deferred_sig:
                    self.deferred_sig = 0          # the tty's signal reached the workload itself
            self._resume(pid, sig)
            return
        self._gone(pid, status)

    def _gone(self, pid, status):
        self.roots.pop(pid, None)
        self.tables.pop(pid, None)
        self.pending.pop(pid, None)
        self.extra.pop(pid, None)
        self.exec_arg.pop(pid, None)
        if pid == self.root and self.exit_status is None:
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                self.exit_status = launch.status_of(status)
            if self.options.waiting is not None and self.exit_status is not None and self.tables:
                left = processes(list(self.tables))
                if left:
                    self.options.waiting(self.exit_status, left)

    def _new_task(self, pid) -> dict:
        """A task we have not seen: a new child (maybe before its parent's fork event) or thread."""
        self.tasks_seen += 1
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = "?"
        tab = self._exe_table(exe)
        self.tables[pid] = tab
        return tab

    def _exe_table(self, exe: str) -> dict:
        tab = self.exe_tables.get(exe)
        if tab is None:
            tab = self.exe_tables[exe] = {}
        return tab

    def _on_exec(self, pid):
        try:
            former = abi.geteventmsg(pid)
        except Exception:
            former = pid
        if former != pid:     # a non-leader thread exec'd and took over the leader's tid
            p = self.pending.pop(former, None)
            self.pending.pop(pid, None)
            if p is not None:
                self.pending[pid] = p
            self.tables.pop(former, None)
            arg = self.exec_arg.pop(former, None)
        else:
            arg = self.exec_arg.pop(pid, None)
        self.roots.pop(pid, None)
        self.roots.pop(former, None)
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = "?"
        if exe.endswith(" (deleted)"):
            exe = exe[:-10]
        exe = self._in_root(pid, exe) or exe
        self.b.exec_(exe)
        arg = self._in_root(pid, arg) if arg else None
        if arg:
            real = resolve_in_root(pid, arg)
            if real != exe:      # a script: the kernel ran its interpreter (exe)
                self.b.exec_(real)
        if not self.first_exe:
            self.first_exe = exe
            self.nnp = not self.fallback and _no_new_privs(pid) and not _no_new_privs("self")
        if getattr(self, "nnp", False):
            why = _privileged_exe(exe)
            if why and exe not in self.nnp_named:
                self.nnp_named.add(exe)
                self.b.note(f"{exe} is {why} but ran without it: no_new_privs was set on the workload (without "
                            f"CAP_SYS_ADMIN the kernel requires it for the tracer's seccomp filter), so its "
                            f"output and needs may differ from a normal run (learn it as root, or with "
                            f"--backend ebpf)")
        self.tables[pid] = self._exe_table(exe)

    # ------------------------------------------------------------ entries
    def _new_entry(self, tab, audit_arch, nr) -> list:
        key = nr if audit_arch == self.native_audit else (audit_arch, nr)   # the loop's key: nr as u64
        if nr >= 1 << 63:
            nr -= 1 << 64
        arch, num = syscalls.from_audit(audit_arch, nr)
        try:
            name = syscalls.name(arch, num)
        except KeyError:
            name = f"#{num}"
        spec = syscalls.tracked_args(arch, name)
        argidx = spec.indexes if spec else ()
        on_entry, on_exit = self._handlers.get(name, (None, None))
        fast = FAST_PYTHON
        if name in _OPENS:
            on_entry = self._open_entry(arch, name)
            row = semantics.of(arch, name)
            if row.kind == "open":
                fast = FAST_OPEN + row.flags
        elif on_entry is None:
            fast = FAST_PLAIN
        if on_entry is None and argidx:
            on_entry, fast = self._h_args, FAST_ARGS
        if name in NO_RESULT and on_entry is None:
            on_entry, fast = self._h_noresult, FAST_NORESULT
        ignore = tab is self.prelaunch and name not in ("execve", "execveat")
        if ignore:
            on_entry, on_exit, fast = self._h_noresult, None, FAST_NORESULT
        e = [0, 0, 0, {}, (arch, name), on_entry, on_exit, argidx, {}, ignore, fast]
        tab[key] = e
        return e

    def _make_handlers(self) -> dict:
        h = {}
        for n in _OPENS:
            h[n] = (None, self._x_open)   # the entry handler is made per ABI (_open_entry) with the entry
        h["socket"] = (self._h_socket, self._x_socket)
        for n in ("bind", "connect"):
            h[n] = (self._h_sockaddr, None)
        for n in _EXECS:
            h[n] = (self._h_exec, None)
        h["clone3"] = (self._h_clone3, None)
        for n in _PATH_OPS:
            h[n] = (self._h_path, self._x_path)
        return h

    @staticmethod
    def _sample(e) -> bool:
        c = e[COUNT]
        return c <= SAMPLE_FIRST or not e[OK] or not (c & (c - 1))

    def _record_args(self, e, info):
        a = info.args
        vals = tuple([a[i] for i in e[ARGIDX]])
        d = e[ARGS]
        d[vals] = d.get(vals, 0) + 1

    def _h_args(self, pid, e, info):
        a = info.args
        vals = tuple([a[i] for i in e[ARGIDX]])
        d = e[ARGS]
        d[vals] = d.get(vals, 0) + 1
        return self._sample(e)

    def _h_noresult(self, pid, e, info):
        return False

    def _resolve(self, pid, dirfd, path) -> str | None:
        if path is None:
            return None
        if path.startswith("/"):
            return os.path.normpath(path)
        try:
            if dirfd is None or (dirfd & 0xFFFFFFFF) == AT_FDCWD32:
                base = os.readlink(f"/proc/{pid}/cwd")
            else:
                base = os.readlink(f"/proc/{pid}/fd/{dirfd & 0xFFFFFFFF}")
        except OSError:
            return None
        if not base.startswith("/"):
            return None
        return os.path.normpath(os.path.join(base, path))

    def _in_root(self, pid, path: str | None) -> str | None:
        """A path as our root sees it -> as the traced process sees it (inside its own root)."""
        if path is None:
            return None
        if pid not in self.roots:
            self.roots[pid] = root_of(pid)
        return in_root(self.roots[pid], path)

    def _open_entry(self, arch, name):
        """The entry handler of one open-family syscall of one ABI (its argument positions bound once: an
        open costs two stops, and this runs at each of them)."""
        row = semantics.of(arch, name)
        pa = row.paths[0]
        dirfd_i, path_i, flags_i, kind = pa.dirfd, pa.index, row.flags, row.kind
        args, extra, mem = self.args, self.extra, self.mem

        def on_open(pid, e, info):
            if kind == "creat":
                flags = semantics.CREAT_FLAGS
            elif kind == "openat2":   # struct open_how *how: how->flags is the first u64
                flags = mem.u64(pid, args[flags_i]) or 0
            else:
                flags = args[flags_i]
            existed = None
            if flags & O_CREAT and (flags & O_TMPFILE) != O_TMPFILE:
                # "created" as the kernel's FMODE_CREATED (the eBPF backend's): the file the open reaches,
                # through a symlink unless O_NOFOLLOW / O_EXCL, did not exist before
                p = self._resolve(pid, None if dirfd_i is None else args[dirfd_i], mem.string(pid, args[path_i]))
                if p:
                    existed = os.path.lexists(p) if flags & (os.O_EXCL | os.O_NOFOLLOW) else os.path.exists(p)
            extra[pid] = (flags, existed)
            return True
        return on_open

    def _x_open(self, pid, e, rval):
        flags, existed = self.extra.pop(pid, (0, None))
        if rval < 0:
            return
        try:
            path = readlink(f"/proc/{pid}/fd/{rval}")
        except OSError:
            return
        if path[:1] != "/":
            return
        if path.endswith(" (deleted)"):
            path = path[:-10]
        root = self.roots.get(pid, 0)
        if root != "/":
            path = self._in_root(pid, path)
            if path is None:
                return
        key = (flags, existed is False)
        access = self.open_access.get(key)
        if access is None:
            access = self.open_access[key] = semantics.open_access(flags, existed is False)
        have = self.b.files[path]    # RecordingBuilder.file, inlined: an open costs two stops already
        for acc in access:
            have.add(acc)

    def _h_socket(self, pid, e, info):
        self._record_args(e, info)
        a = info.args
        self.extra[pid] = (a[0] & 0xFFFFFFFF, a[1] & 0xF)
        return True

    def _x_socket(self, pid, e, rval):
        dt = self.extra.pop(pid, None)
        if rval < 0 or dt is None:
            return
        try:
            self.sock_types[os.readlink(f"/proc/{pid}/fd/{rval}")] = dt
        except OSError:
            pass

    def _h_sockaddr(self, pid, e, info):
        a = info.args
        fd, addr, alen = a[0] & 0xFFFFFFFF, a[1], a[2] & 0xFFFFFFFF
        if addr and alen >= 2:
            raw = self.mem.read(pid, addr, min(alen, 128))
            try:
                ino = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                ino = ""
            sock = self.sock_types.get(ino)
            cwd = (self._in_root(pid, self._cwd(pid)) or "") if needs_cwd(raw) else ""   # no /proc lookup for an IP
            ep = endpoint(e[NAME][1], raw, sock[1] if sock else None, None, cwd)
            if ep is not None:
                record_endpoint(self.b, ep)
        return self._sample(e)

    def _cwd(self, pid):
        try:
            return os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return ""

    def _h_exec(self, pid, e, info):
        a = info.args
        pa = semantics.of(*e[NAME]).paths[0]
        p = self._resolve(pid, None if pa.dirfd is None else a[pa.dirfd], self.mem.string(pid, a[pa.index]))
        if p:
            self.exec_arg[pid] = p
        return self._sample(e)

    def _h_clone3(self, pid, e, info):
        """clone3 keeps its flags in struct clone_args: read them (u64 at offset 0) and record them as
        clone3's argument values, so that the learner can allow the same namespace flags on the clone
        that glibc falls back to when a profile answers clone3 with ENOSYS."""
        a = info.args
        if a[0] and a[1] >= 8:
            flags = self.mem.u64(pid, a[0])
            if flags is not None:
                d = e[ARGS]
                d[(flags,)] = d.get((flags,), 0) + 1
        return self._sample(e)

    def _h_path(self, pid, e, info):
        a = info.args
        out = []
        for dfd_i, path_i, access in _PATH_OPS[e[NAME][1]]:
            p = self._resolve(pid, None if dfd_i is None else a[dfd_i], self.mem.string(pid, a[path_i]))
            if p:
                out.append((p, access))
        self.extra[pid] = out
        return True

    def _x_path(self, pid, e, rval):
        out = self.extra.pop(pid, ())
        if rval >= 0:
            for p, access in out:
                p = self._in_root(pid, p)
                if p:
                    for acc in access:
                        self.b.file(p, acc)

    # ------------------------------------------------------------ result
    def _build(self) -> Recording:
        b = self.b
        for exe, tab in self.exe_tables.items():
            for e in tab.values():
                self._emit(exe, e)
        for e in self.prelaunch.values():
            if not e[IGNORE]:
                self._emit(self.first_exe or self.path, e)
        complete = not self.interrupted and self.exit_status is not None
        return b.build(self.exit_status, complete, self.interrupted)

    def _emit(self, exe, e):
        if e[IGNORE] or not e[COUNT]:
            return
        b = self.b
        arch, name = e[NAME]
        b.syscall(arch, name, e[COUNT])
        b.attribute(exe, arch, name)
        if e[OK]:
            b.result(arch, name, 0, e[OK])
        for en, n in e[ERRNOS].items():
            b.result(arch, name, -en, n)
        for vals, n in e[ARGS].items():
            b.arg(arch, name, vals, n)


