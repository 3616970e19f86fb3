"""One eBPF trace session: a loaded program (:mod:`.program`), the processes it follows, the events it
sends (decoded with :mod:`.layouts`), and at the end the counts read from its maps, all fed to a
RecordingBuilder.

The program keeps only the workload's processes (a tgid set that follows forks, or every task of one
cgroup v2), counts syscalls, results and errnos per (ABI, number) in per-CPU maps, records the values
of ``syscalls.tracked_args`` per tuple in a hash map, keeps per process image a bitmap of its syscalls
(for attribution to executables), and sends through a ring buffer only what is new: a syscall or
argument tuple seen for the first time, an absolute path not sent before, a bind/connect, an exec, a
fork, an exit. Counts are read from the maps at the end (:meth:`Session.collect`). A full ring buffer
is counted in the kernel and reported (``Recording.lost_events`` and a note); facts whose event was
dropped are retried, and counts never depend on events.
"""
from __future__ import annotations

import ctypes as ct
import os
import select
import threading
from collections.abc import Sequence

from ...kernel import constants, semantics, syscalls
from ..base import Cgroup, Command, Pid, Target, TraceOptions
from ..paths import resolve_in_root
from ..recording import RecordingBuilder
from ..sockaddr import record_endpoint
from . import program
from .capabilities import read_checks
from .gate import Gate
from .gate import usable as gate_usable
from .layouts import (ABI_I386, ABI_NATIVE, ABI_X32, ADDR_MAX, EV_ADDR, EV_ARGS, EV_EXE, EV_EXEC, EV_EXIT,
                      EV_FORK, EV_NEWPROC, EV_PATH, EV_SCRIPT, EV_SYSCALL, F_COMPAT, LOST_NAMES, MAX_DEPTH, PBUF,
                      SLOTS, ST_CWD, ST_JOIN, ST_OUTSIDE, ST_TRUNC, WORDS, X32_BIT, EvBig, EvPath, EvSmall,
                      endpoint_of, payload, text)
from .program import USER_SLOTS
from .targets import cgroup_info, proc_exe

POLL_MS = 25                # userspace reads the ring buffer this often while news come,
IDLE_MS = 1000              # backing off (doubling) to this while none do, then waits to be woken


class Session:
    """One loaded BPF program and what userspace learnt from its events."""

    def __init__(self, target: Target, options: TraceOptions, builder: RecordingBuilder):
        self.builder = builder
        self.options = options
        self.exe: dict[tuple[int, int], str] = {}
        self.live: set[int] = set()
        self.launcher: tuple[int, int] | None = None   # (tgid, gen) of the command's child before its exec
        self.pending_exec: dict[int, tuple] = {}       # tgid -> (gen, bitmap, comm) of an image that exec'd
        # paths and addresses of these tasks (by comm) are not the workload's: a container runtime's init
        # before it execs the workload (its syscalls are removed by attribution, see tracer/container.py)
        self.ignore_comms = frozenset(c.encode() if isinstance(c, str) else c
                                      for c in options.extra.get("ignore_comms", ()))
        self.unresolved: list[str] = []    # names that are not paths from the task's root (examples)
        self.truncated: list[str] = []     # paths deeper or longer than the kernel's walk (examples)
        self.n_unresolved = 0
        self.n_truncated = 0
        self.news = 0
        self.next_user_slot = 0
        cgroup = cgroup_info(target.path)[:2] if isinstance(target, Cgroup) else None
        prog = self.program = program.load(cgroup, builder.note, wake_on_exit=isinstance(target, Pid))
        self.bpf, self.archs, self.have_caps = prog.bpf, prog.archs, prog.have_caps
        self.per_cpu, self.pidmap_size = prog.per_cpu, prog.pidmap_size
        self.compile_seconds = prog.compile_seconds
        if options.progress:
            options.progress({"bpf": f"compiled and attached in {self.compile_seconds:.2f} s"})
        program.fill_specs(prog)
        self.gate: Gate | None = None
        if options.known is not None and isinstance(target, Command) and gate_usable(prog):
            self.gate = Gate(prog, options.known)   # the command's launcher installs its filter (backend.py)
        else:
            program.attach_calls(prog)
            if options.known is not None:
                n = program.fill_known(prog, options.known)
                builder.note(f"fast gate: {n} syscalls the baseline explains were only counted in the kernel "
                             f"(no attribution to executables, results not sampled)")
        program.enable(prog)
        self.procs = self.bpf[b"procs"]
        self.pidmap = self.bpf[b"pidmap"]
        self.bpf[b"events"].open_ring_buffer(self._on_event)
        self.rb_fd = self.bpf[b"events"].map_fd     # readable while a record waits
        self.wait_ms = POLL_MS

    def track(self, tgid: int, gen: int = 0, pending: bool = False, exe: str | None = None) -> bool:
        if self.next_user_slot >= USER_SLOTS:
            return False
        slot = self.next_user_slot
        self.next_user_slot += 1
        leaf = self.procs.Leaf()
        leaf.gen = gen
        leaf.flags = 1 if pending else 0
        leaf.tgid = tgid
        leaf.live = 1
        try:
            self.procs[self.procs.Key(slot)] = leaf
            if tgid < self.pidmap_size:
                self.pidmap[self.pidmap.Key(tgid)] = self.pidmap.Leaf(slot + 1)
            else:
                big = self.bpf[b"bigpids"]
                big[big.Key(tgid)] = big.Leaf(slot + 1)
        except Exception:
            return False
        self.live.add(tgid)
        self.exe.setdefault((tgid, gen), exe or proc_exe(tgid) or "")
        return True

    # -- events -----------------------------------------------------------
    def _exe_of(self, tgid: int, gen: int, comm: bytes = b"") -> str:
        e = self.exe.get((tgid, gen))
        if e:
            return e
        e = proc_exe(tgid) or (f"[{comm.decode(errors='replace')}]" if comm else "?")
        self.exe[(tgid, gen)] = e
        return e

    def _attribute_bitmap(self, tgid: int, gen: int, seen, comm: bytes = b"") -> None:
        exe = self._exe_of(tgid, gen, comm)
        for w in range(WORDS):
            bits = seen[w]
            while bits:
                low = bits & -bits
                slot = w * 64 + low.bit_length() - 1
                bits ^= low
                abi, nr = divmod(slot, SLOTS)
                arch = self.archs.get(abi)
                if arch:
                    self.builder.attribute(exe, arch, syscalls.name(arch, nr))

    def _in_flight(self, tgid: int, gen: int, compat: bool) -> None:
        """The calls a live process's threads are blocked in as the trace ends. The full trace records a call
        at its return, so a call entered and not yet returned (a server's accept, a parent's wait4) is only
        here: /proc/TID/syscall names it. (ptrace saw its entry, or its restart when it attached.) A process
        that made i386 calls is taken to be blocked in one."""
        try:
            tids = os.listdir(f"/proc/{tgid}/task")
        except OSError:
            return
        for tid in tids:
            try:
                with open(f"/proc/{tgid}/task/{tid}/syscall", "rb") as f:
                    word = f.read(32).split(maxsplit=1)[0]
                nr = int(word)
            except (OSError, IndexError, ValueError):   # gone, or "running": in no call
                continue
            if nr < 0:
                continue
            abi = ABI_I386 if compat else ABI_NATIVE
            if not compat and nr & X32_BIT and ABI_X32 in self.archs:
                abi, nr = ABI_X32, nr & ~X32_BIT
            arch = self.archs.get(abi)
            if arch is None:
                continue
            name = syscalls.name(arch, nr)
            self.builder.syscall(arch, name, 1)
            self.builder.attribute(self._exe_of(tgid, gen), arch, name)

    def _flush_exec(self, tgid: int) -> None:
        got = self.pending_exec.pop(tgid, None)
        if got is not None:
            self._attribute_bitmap(tgid, got[0], got[1], got[2])

    def _path(self, e, raw: bytes) -> str | None:
        """A path the kernel resolved (as the task sees it), or None when it is not one (counted)."""
        path = text(raw)
        if e.status & ST_TRUNC:
            self.n_truncated += 1
            if len(self.truncated) < 3:
                self.truncated.append(path[:80] + "...")
            return None
        if e.status & ST_OUTSIDE or not path.startswith("/"):
            self.n_unresolved += 1
            if len(self.unresolved) < 3:
                self.unresolved.append(path or "?")
            return None
        if e.status & ST_JOIN:   # a directory's path + the name the call passed: . and .. (lexically)
            path = os.path.normpath(path)
            if path.startswith("//"):
                path = path[1:]
        return path

    def _on_event(self, ctx, data, size) -> None:
        try:
            self._handle(data, size)
        except Exception as exc:  # never let a callback error kill the trace
            self.builder.note(f"eBPF event handling error: {type(exc).__name__}: {exc}")

    def _handle(self, data, size) -> None:
        kind = ct.cast(data, ct.POINTER(ct.c_uint32)).contents.value
        b = self.builder
        self.news += 1
        if kind in (EV_SYSCALL, EV_ARGS, EV_FORK, EV_NEWPROC):
            e = ct.cast(data, ct.POINTER(EvSmall)).contents
            if kind == EV_FORK:
                self.exe.setdefault((e.tgid, 0), self._exe_of(e.parent, e.pgen))
                self.live.add(e.tgid)
            elif kind == EV_NEWPROC:
                self.live.add(e.tgid)
                self._exe_of(e.tgid, 0, e.comm)
            elif kind == EV_SYSCALL and self.options.progress:
                arch = self.archs.get(e.abi, "?")
                self.options.progress({"new": f"{syscalls.name(arch, e.nr)} ({arch})", "events": self.news})
            return
        if kind in (EV_EXEC, EV_EXIT):
            e = ct.cast(data, ct.POINTER(EvBig)).contents
            if kind == EV_EXIT:
                self._attribute_bitmap(e.tgid, e.gen, e.seen, e.comm)
                self.live.discard(e.tgid)
                return
            # the old image's syscalls: attributed when the new image's path follows (EV_EXE), so that the
            # command's own execve calls go to the program they started (as under ptrace)
            self._flush_exec(e.tgid)
            self.pending_exec[e.tgid] = (e.gen, list(e.seen), bytes(e.comm))
            return
        if kind == EV_EXE:
            e = ct.cast(data, ct.POINTER(EvPath)).contents
            exe = self._path(e, payload(data, size, EvPath, e.len))
            if exe:      # the file the new image maps, resolved by the kernel at the exec
                if (e.tgid, e.gen) == self.launcher:
                    self.exe[self.launcher] = exe      # the launcher itself never appears
                self.exe[(e.tgid, e.gen + 1)] = exe
                b.exec_(exe)
            self._flush_exec(e.tgid)
            return
        e = ct.cast(data, ct.POINTER(EvPath)).contents
        if e.comm in self.ignore_comms:
            return
        raw = payload(data, size, EvPath, e.len)
        if kind == EV_PATH:
            path = self._path(e, raw)
            if path:
                for acc, bit in semantics.ACCESS_BITS.items():
                    if e.acc & bit:
                        b.file(path, acc)
        elif kind == EV_SCRIPT:
            # the script an interpreter runs: its file is closed by the time of the exec, so the kernel
            # sends the name joined to the cwd; symlinks in it are resolved here, inside the task's root
            path = self._path(e, raw)
            if path:
                b.exec_(resolve_in_root(e.tgid, path))
        elif kind == EV_ADDR:
            cwd = text(raw[ADDR_MAX:]) if e.status & ST_CWD else ""
            op = "bind" if syscalls.name(self.archs.get(e.abi, "x86_64"), e.nr) == "bind" else "connect"
            ep = endpoint_of(op, raw[: min(e.acc, ADDR_MAX)], e.sock, cwd)
            if ep is not None:
                record_endpoint(b, ep)

    # -- the end ----------------------------------------------------------
    def poll(self, cap_ms: int | None = None, fds: Sequence[int] = ()) -> list[int]:
        """Wait for the kernel's news, one of ``fds`` to become readable or ``cap_ms`` (None: no limit), then
        read what the kernel sent. The fds of ``fds`` that are readable.

        The program submits without waking us (ebpf.c: rb_flags) except when a read cannot wait: each
        wake-up is a context switch, paid by the workload when we share its CPU (measured here: reading
        every 25 ms cost nginx 4-6% of its requests). So the wait is POLL_MS while news come and doubles
        while none do; past IDLE_MS it lasts until the kernel, a signal, an fd or ``cap_ms`` ends it. The
        ring's fd is readable at once when a record waits. With a live status line (options.progress: only
        on a terminal the workload does not use) the wait stays at IDLE_MS, so that news the kernel did not
        wake us for show within a second: someone is watching, and one wake-up a second is the price.
        """
        wait = self.wait_ms
        if wait >= IDLE_MS and self.options.progress is None:
            wait = None
        if cap_ms is not None:
            wait = cap_ms if wait is None else min(wait, cap_ms)
        ready = select.select([self.rb_fd, *fds], [], [], None if wait is None else wait / 1000)[0]
        before = self.news
        self.bpf.ring_buffer_consume()
        self.wait_ms = POLL_MS if self.news != before else min(self.wait_ms * 2, IDLE_MS)
        return [fd for fd in ready if fd != self.rb_fd]

    def drain(self) -> None:
        self.bpf.ring_buffer_consume()

    def collect(self) -> None:
        b = self.builder
        for tgid in list(self.pending_exec):   # an exec whose path event was lost
            self._flush_exec(tgid)
        if self.gate is not None:
            self.gate.stop()
            self.gate.record(b, b.note)
        # the per-call programs stop first: the counts read below are then one moment's (a process
        # still running would otherwise move failures from a CPU's entry to `errnos` while we read)
        try:
            self.bpf.detach_raw_tracepoint(tp=b"sys_exit")
        except Exception:
            pass
        full = self.bpf[b"fulltrace"]
        full[full.Key(0)] = full.Leaf(0)   # and the programs that fill in what it cannot see
        slots = self.bpf[b"slots"]
        pending: dict[tuple[int, int, int], int] = {}   # failures each CPU had not yet added to `errnos`
        arg_runs: dict[tuple[int, int, tuple[int, ...]], int] = {}   # repeats not yet added to `argcounts`
        for abi, arch in self.archs.items():
            for nr in range(SLOTS):
                per_cpu = slots[slots.Key(abi * SLOTS + nr)]
                n = sum(s.count for s in per_cpu)
                for s in per_cpu:
                    if s.errn:
                        key = (abi, nr, s.err)
                        pending[key] = pending.get(key, 0) + s.errn
                    if s.an:
                        akey = (abi, nr, tuple(int(x) for x in s.av))
                        arg_runs[akey] = arg_runs.get(akey, 0) + s.an
                if not n:
                    continue
                name = syscalls.name(arch, nr)
                b.syscall(arch, name, n)
                stat = b.counts[arch][name]
                stat[1] += sum(s.results for s in per_cpu)
                stat[2] += sum(s.ok for s in per_cpu)
        for k, v in self.bpf[b"other"].items():
            arch = self.archs.get(k.abi)
            if arch is None or not v.count:
                continue
            name = syscalls.name(arch, k.nr) if k.nr >= 0 else f"#{k.nr}"
            b.syscall(arch, name, v.count)
            stat = b.counts[arch].get(name)
            if stat is None:
                continue   # a number no syscall can have: noted, not a fact (RecordingBuilder)
            stat[1] += v.results
            stat[2] += v.ok
        for k, v in self.bpf[b"errnos"].items():
            key = (k.abi, k.nr, k.err)
            pending[key] = pending.get(key, 0) + v.value
        for (abi, nr, err), n in pending.items():
            arch = self.archs.get(abi)
            if arch is None:
                continue
            name = syscalls.name(arch, nr) if nr >= 0 else f"#{nr}"
            stat = b.counts[arch].get(name)
            if stat is None:
                continue
            en = constants.name_of("errno", err) or f"E{err}"
            stat[3][en] = stat[3].get(en, 0) + n
        for k, v in self.bpf[b"argcounts"].items():
            key = (k.abi, k.nr, tuple(int(x) for x in k.v))
            arg_runs[key] = arg_runs.get(key, 0) + v.value
        for (abi, nr, vals), count in arg_runs.items():
            arch = self.archs.get(abi)
            if arch is None:
                continue
            name = syscalls.name(arch, nr)
            ta = syscalls.tracked_args(arch, name)
            n = 1 if name == "clone3" else len(ta.indexes) if ta is not None else 0
            if n:
                b.arg(arch, name, vals[:n], count)
        # images still alive (or whose exit event was lost): their bitmaps
        used = list(range(self.next_user_slot))
        per_cpu_next = self.bpf[b"nextslot"][0]
        for cpu, n in enumerate(per_cpu_next):
            used += range(USER_SLOTS + cpu * self.per_cpu, USER_SLOTS + cpu * self.per_cpu + min(n, self.per_cpu))
        for slot in used:
            v = self.procs[self.procs.Key(slot)]
            if v.live:
                self._attribute_bitmap(v.tgid, v.gen, v.seen)
                if self.gate is None:
                    self._in_flight(v.tgid, v.gen, bool(v.flags & F_COMPAT))
        if self.have_caps:
            self._collect_caps()
        lost = self.bpf[b"lost"]
        total = 0
        for i, what in enumerate(LOST_NAMES):
            n = sum(lost[lost.Key(i)])
            if n:
                total += n
                b.note(f"eBPF: {n} events lost ({what}); this run may miss facts")
        b.lost_events += total
        if self.n_truncated:
            b.note(f"eBPF: {self.n_truncated} paths deeper than {MAX_DEPTH} components or longer than {PBUF - 1} "
                   f"bytes were left out (not recorded), e.g. {', '.join(self.truncated)}")
        if self.n_unresolved:
            b.note(f"eBPF: {self.n_unresolved} paths not reachable from the process's root were left out, "
                   f"e.g. {', '.join(self.unresolved)}")

    def _collect_caps(self) -> None:
        other = 0
        for check in read_checks(self.bpf[b"caps"], self.archs, self._exe_of):
            if isinstance(check, int):
                other += check
            else:
                self.builder.capability(check)
        if other:
            self.builder.note(f"eBPF: {other} capability checks on another task's credentials were left out "
                              f"(e.g. the kernel checking a signal's target): they are not the workload's needs")

    def lost_ringbuf(self) -> int:
        lost = self.bpf[b"lost"]
        return sum(lost[lost.Key(0)])

    def close(self) -> None:
        # Each classic tracepoint's detach waits for an RCU grace period in the kernel (~75 ms here;
        # raw tracepoints do not): detach them side by side so that the waits overlap.
        bpf = self.bpf
        if self.gate is not None:
            self.gate.stop()

        def detach(tp: bytes) -> None:
            try:
                bpf.detach_tracepoint(tp)
            except Exception:
                pass

        threads = [threading.Thread(target=detach, args=(tp,)) for tp in list(bpf.tracepoint_fds)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            bpf.cleanup()
        except Exception:
            pass
