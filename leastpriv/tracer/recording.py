"""Recording: the facts of one run, and its JSON form.

A Recording never changes after the run (frozen dataclasses). Backends build
one with :class:`RecordingBuilder`, which is the only mutable thing here.

Argument values are kept as tuples of the arguments ``syscalls.tracked_args``
names (e.g. socket's (domain, type, protocol)), so that the learner can emit
one seccomp rule per combination actually seen.
"""
from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Mapping

from ..values import Value, field, value
from ..kernel import constants, syscalls
from ..errors import UserError
from ..fileio import dumps, read_json, write_atomic
from . import pathfacts
from .. import schema

TYPE_CHECKING = False
if TYPE_CHECKING:   # for annotations only: typing costs every start ~1.5 ms
    from typing import Any

RECORDING_FORMAT = "leastpriv-recording"
RECORDING_VERSION = 1

ACCESS_KINDS = ("read", "write", "exec", "create")


@value
class SyscallStat(Value):
    """How often one syscall was made, and what it returned where seen.

    ``results`` is how many of the ``count`` calls had their return value
    observed (a backend may sample results to stay fast); ``ok`` how many of
    those succeeded, ``errnos`` the error names of the others.
    """

    count: int
    results: int = 0
    ok: int = 0
    errnos: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"count": self.count, "results": self.results, "ok": self.ok, "errnos": dict(sorted(self.errnos.items()))}

    @classmethod
    def from_json(cls, d: Mapping) -> "SyscallStat":
        return cls(int(d["count"]), int(d.get("results", 0)), int(d.get("ok", 0)), dict(d.get("errnos", {})))


@value
class CapCheck(Value):
    """One capability the kernel checked (eBPF), or one inferred from a syscall (ptrace)."""

    cap: str                 # "CAP_CHOWN"
    granted: bool
    audited: bool | None     # False for CAP_OPT_NOAUDIT checks; None when unknown
    syscall: str             # the syscall in progress ("" when none)
    exe: str = ""
    count: int = 1
    inferred: bool = False   # True when deduced from a syscall, not seen as a check
    reason: str = ""         # why it was inferred

    def key(self) -> tuple:
        return (self.cap, self.granted, self.audited is True, self.audited is None, self.syscall, self.exe, self.inferred, self.reason)

    def to_json(self) -> dict:
        return {"cap": self.cap, "granted": self.granted, "audited": self.audited, "syscall": self.syscall,
                "exe": self.exe, "count": self.count, "inferred": self.inferred, "reason": self.reason}

    @classmethod
    def from_json(cls, d: Mapping) -> "CapCheck":
        return cls(d["cap"], bool(d["granted"]), d.get("audited"), d.get("syscall", ""), d.get("exe", ""),
                   int(d.get("count", 1)), bool(d.get("inferred", False)), d.get("reason", ""))


@value
class Endpoint(Value):
    """A bind or connect: family, address, port, and the socket's protocol."""

    op: str          # "bind" | "connect"
    family: str      # "AF_INET" | "AF_INET6" | "AF_UNIX" | ...
    address: str     # IP address or unix path ("@name" for abstract)
    port: int | None
    proto: str = "unknown"   # "tcp" | "udp" | "raw" | "unknown"

    def key(self) -> tuple:
        return (self.op, self.family, self.address, -1 if self.port is None else self.port, self.proto)

    def to_json(self) -> dict:
        return {"op": self.op, "family": self.family, "address": self.address, "port": self.port, "proto": self.proto}

    @classmethod
    def from_json(cls, d: Mapping) -> "Endpoint":
        return cls(d["op"], d["family"], d["address"], d.get("port"), d.get("proto", "unknown"))

    def label(self) -> str:
        where = self.address if self.port is None else f"{self.address}:{self.port}"
        return f"{self.op} {self.proto} {self.family} {where}"


ArgValues = Mapping[tuple[int, ...], int]   # values tuple -> count


@value
class Recording(Value):
    """One run's facts (design.md). Build with RecordingBuilder; never mutate."""

    id: str
    command: tuple[str, ...]
    cwd: str
    started: float
    ended: float
    backend: str                      # "ptrace" | "ebpf" | "seccomp-notify" | "log" (seccomp log records, kernlog.py)
    kernel: str
    host_arch: str
    uid: int
    gid: int
    user: str
    exit_status: int | None          # 128+N for a signal, None when unknown (attach modes)
    complete: bool
    interrupted: str = ""             # why not complete: "SIGINT", "tracer error: ..."
    syscalls: Mapping[str, Mapping[str, SyscallStat]] = field(default_factory=dict)   # arch -> name -> stat
    args: Mapping[str, Mapping[str, ArgValues]] = field(default_factory=dict)          # arch -> name -> values -> count
    capabilities: tuple[CapCheck, ...] = ()
    files: Mapping[str, frozenset[str]] = field(default_factory=dict)                  # path -> access kinds
    execs: tuple[str, ...] = ()
    network: tuple[Endpoint, ...] = ()
    executables: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)  # exe -> arch -> syscalls
    unknown_syscalls: Mapping[str, tuple[int, ...]] = field(default_factory=dict)      # arch -> numbers
    lost_events: int = 0
    notes: tuple[str, ...] = ()
    target: str = ""                  # "cmd" | "pid:N" | "cgroup:PATH" | "bundle:DIR" | "image:FILE"
    paths: Mapping[str, Mapping[str, str]] = field(default_factory=dict)   # path -> kind, realpath, interpreter

    # ---- JSON -----------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "format": RECORDING_FORMAT,
            "version": RECORDING_VERSION,
            "id": self.id,
            "command": list(self.command),
            "cwd": self.cwd,
            "started": self.started,
            "ended": self.ended,
            "backend": self.backend,
            "kernel": self.kernel,
            "host_arch": self.host_arch,
            "uid": self.uid,
            "gid": self.gid,
            "user": self.user,
            "exit_status": self.exit_status,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "target": self.target,
            "syscalls": {a: {n: s.to_json() for n, s in sorted(t.items())} for a, t in sorted(self.syscalls.items())},
            "args": {a: {n: [{"values": list(v), "count": c} for v, c in sorted(vals.items())]
                         for n, vals in sorted(t.items())} for a, t in sorted(self.args.items())},
            "capabilities": [c.to_json() for c in sorted(self.capabilities, key=CapCheck.key)],
            "files": {p: sorted(acc) for p, acc in sorted(self.files.items())},
            "execs": sorted(self.execs),
            "network": [e.to_json() for e in sorted(self.network, key=Endpoint.key)],
            "executables": {exe: {a: sorted(s) for a, s in sorted(t.items())} for exe, t in sorted(self.executables.items())},
            "unknown_syscalls": {a: sorted(n) for a, n in sorted(self.unknown_syscalls.items())},
            "lost_events": self.lost_events,
            "notes": list(self.notes),
            "paths": {p: dict(sorted(e.items())) for p, e in sorted(self.paths.items())},
        }

    @classmethod
    def from_json(cls, d: Mapping, source: str = "recording") -> "Recording":
        if not isinstance(d, Mapping) or d.get("format") != RECORDING_FORMAT:
            raise UserError(f"{source}: not a leastpriv recording")
        version = d.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise UserError(f"{source}: recording has no integer \"version\"")
        if version > RECORDING_VERSION:
            raise UserError(f"{source}: recording format version {version} is newer than this leastpriv "
                            f"understands ({RECORDING_VERSION}); upgrade leastpriv")
        schema.check_shipped(d, "recording", source, "recording")   # leastpriv/schemas/recording.schema.json
        schema.check_names(d, source, "recording")
        try:
            return cls(
                id=d["id"], command=tuple(d["command"]), cwd=d.get("cwd", ""), started=float(d["started"]),
                ended=float(d["ended"]), backend=d["backend"], kernel=d.get("kernel", ""), host_arch=d["host_arch"],
                uid=int(d["uid"]), gid=int(d.get("gid", -1)), user=d.get("user", ""), exit_status=d.get("exit_status"),
                complete=bool(d["complete"]), interrupted=d.get("interrupted", ""), target=d.get("target", ""),
                syscalls={a: {n: SyscallStat.from_json(s) for n, s in t.items()} for a, t in d.get("syscalls", {}).items()},
                args={a: {n: {tuple(int(x) for x in e["values"]): int(e["count"]) for e in vals} for n, vals in t.items()}
                      for a, t in d.get("args", {}).items()},
                capabilities=tuple(CapCheck.from_json(c) for c in d.get("capabilities", [])),
                files={p: frozenset(acc) for p, acc in d.get("files", {}).items()},
                execs=tuple(d.get("execs", [])),
                network=tuple(Endpoint.from_json(e) for e in d.get("network", [])),
                executables={exe: {a: frozenset(s) for a, s in t.items()} for exe, t in d.get("executables", {}).items()},
                unknown_syscalls={a: tuple(n) for a, n in d.get("unknown_syscalls", {}).items()},
                lost_events=int(d.get("lost_events", 0)), notes=tuple(d.get("notes", [])),
                paths=_paths_of(d.get("paths", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{source}: malformed recording ({type(exc).__name__}: {exc})") from None

    def save(self, path: str) -> None:
        write_atomic(path, dumps(self.to_json()))

    @classmethod
    def load(cls, path: str) -> "Recording":
        return cls.from_json(read_json(path, "recording"), str(path))


def _user() -> str:
    """getpass.getuser(): the login name from the environment, else the password database. Not imported
    from getpass, which loads termios (a C extension: ~0.4 ms of every learn) for its password prompt."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(name)
        if user:
            return user
    import pwd   # built into the interpreter
    return pwd.getpwuid(os.getuid())[0]


def _paths_of(table: Any) -> dict:
    """The recorded path facts of a recording's JSON (tracer/pathfacts.py), checked: an object of objects."""
    if not isinstance(table, Mapping) or not all(isinstance(e, Mapping) for e in table.values()):
        raise ValueError("\"paths\" must be an object of objects")
    return {str(p): {str(k): str(v) for k, v in e.items()} for p, e in table.items()}


def is_recording_json(d: Any) -> bool:
    return isinstance(d, Mapping) and d.get("format") == RECORDING_FORMAT


# a number past any syscall table (the recording's "#N" names and unknown_syscalls hold fewer digits)
MAX_UNKNOWN_NR = 1_000_000


def _nameless(name: str) -> bool:
    """A number no syscall can have (negative, or past any table: syscall(-1) probes): not a fact a profile
    can hold (seccomp names syscalls by their numbers in the tables), so the run notes it instead."""
    return name.startswith("#") and not (name[1:].isdigit() and int(name[1:]) < MAX_UNKNOWN_NR)


class RecordingBuilder:
    """Mutable accumulator a backend fills while the workload runs.

    Hot-path methods are plain dict updates; :meth:`build` freezes the result.
    """

    def __init__(self, command: list[str] | tuple[str, ...], backend: str, target: str = "cmd", uid: int | None = None):
        self.id = os.urandom(6).hex()   # 12 random hex digits (uuid4's would be the same)
        self.command = tuple(command)
        self.backend = backend
        self.target = target
        self.cwd = os.getcwd()
        self.started = time.time()
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid()
        # counts[arch][name] = [count, results, ok, {errno: n}]
        self.counts: dict[str, dict[str, list]] = defaultdict(dict)
        self.args: dict[str, dict[str, dict[tuple[int, ...], int]]] = defaultdict(lambda: defaultdict(dict))
        self.caps: dict[tuple, CapCheck] = {}
        self.files: dict[str, set[str]] = defaultdict(set)
        self.execs: set[str] = set()
        self.network: set[Endpoint] = set()
        self.executables: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.unknown: dict[str, set[int]] = defaultdict(set)
        self.nameless: dict[tuple[str, str], int] = defaultdict(int)   # (arch, "#N") -> calls
        self.lost_events = 0
        self.notes: list[str] = []

    # -- facts -------------------------------------------------------------
    def syscall(self, arch: str, name: str, n: int = 1) -> None:
        if _nameless(name):
            self.nameless[(arch, name)] += n
            return
        stat = self.counts[arch].get(name)
        if stat is None:
            self.counts[arch][name] = [n, 0, 0, {}]
            if name.startswith("#"):
                self.unknown[arch].add(int(name[1:]))
        else:
            stat[0] += n

    def result(self, arch: str, name: str, ret: int, n: int = 1) -> None:
        """Record a syscall's return value (negative errno on failure)."""
        if _nameless(name):
            return
        stat = self.counts[arch].get(name)
        if stat is None:
            stat = self.counts[arch][name] = [0, 0, 0, {}]
        stat[1] += n
        if -4096 < ret < 0:
            en = constants.name_of("errno", -ret) or f"E{-ret}"
            stat[3][en] = stat[3].get(en, 0) + n
        else:
            stat[2] += n

    def arg(self, arch: str, name: str, values: tuple[int, ...], n: int = 1) -> None:
        if _nameless(name):
            return
        vals = self.args[arch][name]
        vals[values] = vals.get(values, 0) + n

    def capability(self, check: CapCheck) -> None:
        k = check.key()
        old = self.caps.get(k)
        self.caps[k] = check if old is None else CapCheck(**{**old.__dict__, "count": old.count + check.count})

    def file(self, path: str, access: str) -> None:
        self.files[path].add(access)

    def exec_(self, path: str) -> None:
        self.execs.add(path)
        self.files[path].add("exec")

    def endpoint(self, ep: Endpoint) -> None:
        self.network.add(ep)

    def attribute(self, exe: str, arch: str, name: str) -> None:
        if _nameless(name):
            return
        self.executables[exe][arch].add(name)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # -- result ------------------------------------------------------------
    def build(self, exit_status: int | None, complete: bool, interrupted: str = "") -> Recording:
        for (arch, name), n in sorted(self.nameless.items()):
            self.note(f"{arch}: {n} call(s) with {name[1:]} as the syscall number, which names no syscall (the "
                      f"kernel returns ENOSYS): a seccomp profile cannot allow it, so it gets the profile's "
                      f"default action")
        try:
            user = _user() if self.uid == os.getuid() else str(self.uid)
        except Exception:  # no passwd entry
            user = str(self.uid)
        return Recording(
            id=self.id, command=self.command, cwd=self.cwd, started=self.started, ended=time.time(),
            backend=self.backend, kernel=os.uname().release, host_arch=syscalls.host_arch(),
            uid=self.uid, gid=self.gid, user=user, exit_status=exit_status, complete=complete,
            interrupted=interrupted, target=self.target,
            syscalls={a: {n: SyscallStat(s[0], s[1], s[2], dict(s[3])) for n, s in t.items()} for a, t in self.counts.items()},
            args={a: {n: dict(v) for n, v in t.items()} for a, t in self.args.items()},
            capabilities=tuple(self.caps.values()),
            files={p: frozenset(a) for p, a in self.files.items()},
            execs=tuple(sorted(self.execs)),
            network=tuple(sorted(self.network, key=Endpoint.key)),
            executables={e: {a: frozenset(s) for a, s in t.items()} for e, t in self.executables.items()},
            unknown_syscalls={a: tuple(sorted(n)) for a, n in self.unknown.items()},
            lost_events=self.lost_events, notes=tuple(self.notes),
            paths=self.path_facts(),
        )

    def path_facts(self) -> dict:
        """What the run's paths are, read now on the machine that ran it (tracer/pathfacts.py). Not for
        cgroup (container) runs: their paths may be another mount namespace's, not this machine's."""
        if not (self.target == "cmd" or self.target.startswith("pid:")):
            return {}
        return pathfacts.describe(self.files, self.execs | ({self.command[0]} if self.command and
                                                            self.command[0].startswith("/") else set()))
