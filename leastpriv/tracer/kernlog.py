"""Seccomp log records (audit type 1326) -> a Recording of kind (backend) ``log``.

A profile staged in production in complain mode (``SCMP_ACT_LOG``: ``export
--complain``, ``run --complain-log``) makes the kernel log every call the
profile would deny::

    type=SECCOMP msg=audit(1764478800.123:457): auid=... uid=0 gid=0 ses=... pid=4242 comm="app"
        exe="/usr/bin/app" sig=0 arch=c000003e syscall=63 compat=0 ip=0x7f... code=0x7ffc0000

That is auditd's ``audit.log`` (``ausearch -m SECCOMP -i`` prints it
interpreted: local time, ``arch=x86_64 syscall=uname code=log``, also read);
without auditd the same record reaches the
kernel log as ``audit: type=1326 audit(...): ...``, which ``dmesg``
(``[  553.117550] ...``), ``dmesg -T``, ``journalctl -k`` (``Nov 30 04:21:00
HOST kernel: ...``) and ``/dev/kmsg`` (``6,1234,553117550,-;...``) print with
their own prefixes. A file collected from many nodes may put the node's name
first (``node-a: ...``, ``node-a | ...``). This module reads all of them.

The audit arch value (``arch=c000003e``) names the ABI (AUDIT_ARCH_* ->
libseccomp's name, from the generated tables; x32 is AUDIT_ARCH_X86_64 with
bit 30 in the number) and ``syscall=`` is the number in that ABI's table.
Records are keyed by (node, audit time, serial): the same record read twice
(dmesg and audit.log of one node, a file concatenated twice) counts once.
The kernel's rate limit on printing audit records without auditd
("kauditd_printk_skb: N callbacks suppressed") and audit's own losses
("audit_lost=N") mean records are missing: they are counted and reported,
never guessed. A line that claims to be a seccomp record but cannot be read is
counted as malformed (with its line number), never raised.

What a log cannot tell: arguments (seccomp logs only the number), files,
network, capabilities, and calls the profile already allowed. A Recording
from a log holds the syscalls per ABI and per executable, the time range,
the pids and the uid; everything else is empty.
"""
from __future__ import annotations

import fnmatch
import os
import re
import stat
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Iterable, Iterator

from ..kernel import constants, syscalls
from ..errors import UserError
from .recording import Recording, SyscallStat

BACKEND = "log"
MAX_LINE = 64 * 1024        # a longer "line" is not a log line
_RECORD = re.compile(r"(?:type=1326|type=SECCOMP)\s+(?:msg=)?audit\((\d+|\d\d/\d\d/\d{2,4} \d\d:\d\d:\d\d)"
                     r"(?:\.(\d+))?:(\d+)\)\s?:\s?(.*)$")
_CLAIM = re.compile(r"type=1326|type=SECCOMP")
# ausearch -i prints the machine (audit's machine table) and the syscall's name
_MACHINES = {"i386": "x86", "i486": "x86", "i586": "x86", "i686": "x86", "armeb": "arm", "armv5tejl": "arm",
             "armv7l": "arm"}
_CODES = {"kill": "SECCOMP_RET_KILL_THREAD", "kill_thread": "SECCOMP_RET_KILL_THREAD",
          "kill_process": "SECCOMP_RET_KILL_PROCESS", "trap": "SECCOMP_RET_TRAP", "errno": "SECCOMP_RET_ERRNO",
          "user_notif": "SECCOMP_RET_USER_NOTIF", "trace": "SECCOMP_RET_TRACE", "log": "SECCOMP_RET_LOG",
          "allow": "SECCOMP_RET_ALLOW"}
_FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')
_SUPPRESSED = re.compile(r"kauditd_printk_skb: (\d+) callbacks suppressed")
_LOST = re.compile(r"audit: audit_lost=(\d+)")
# prefixes before the record: /dev/kmsg, dmesg [uptime] or [date], syslog/journal "Mon DD HH:MM:SS host kernel:",
# ISO journal "2026-11-30T04:21:00+0000 host kernel:", and a node name ("node-a: " / "node-a | ")
_KMSG = re.compile(r"^\d+,\d+,\d+,[^;]*;")
_NODE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,252})\s*(?:\||:)\s+")
_SYSLOG = re.compile(r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+) (\S+) kernel: ")
_DMESG = re.compile(r"^\[[^\]]{1,40}\]\s*")


@dataclass(frozen=True)
class LogRecord:
    """One seccomp record."""

    node: str
    time: float
    serial: int
    pid: int
    uid: int | None
    comm: str
    exe: str
    arch: str          # libseccomp's name ("x86_64", "x86", "x32", or "audit:0x...")
    syscall: str       # the name in that ABI's table, "#N" when the table does not know it
    nr: int
    action: str        # SECCOMP_RET_LOG, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO, ...
    line: int

    def key(self) -> tuple:
        return (self.node, self.time, self.serial, self.pid, self.arch, self.nr)


@dataclass(frozen=True)
class LogFilter:
    """Which records to keep: --since, --exe, --comm (globs; any of several)."""

    since: float | None = None
    until: float | None = None
    exe: tuple[str, ...] = ()
    comm: tuple[str, ...] = ()

    def keeps_program(self, r: LogRecord) -> bool:
        if self.exe and not any(fnmatch.fnmatchcase(r.exe, p) for p in self.exe):
            return False
        if self.comm and not any(fnmatch.fnmatchcase(r.comm, p) for p in self.comm):
            return False
        return True

    def keeps_time(self, r: LogRecord) -> bool:
        return (self.since is None or r.time >= self.since) and (self.until is None or r.time <= self.until)

    def describe(self) -> str:
        parts = []
        if self.since is not None:
            parts.append(f"since {_iso(self.since)}")
        if self.until is not None:
            parts.append(f"until {_iso(self.until)}")
        parts += [f"exe {p}" for p in self.exe] + [f"comm {p}" for p in self.comm]
        return ", ".join(parts)


@dataclass(frozen=True)
class LogReport:
    """What was read and what was left out, for the user."""

    source: str
    lines: int = 0
    records: int = 0                 # seccomp records read (duplicates included)
    kept: int = 0
    duplicates: int = 0
    before_since: int = 0            # outside --since/--until
    other_programs: tuple[tuple[str, int], ...] = ()   # (exe, records) left out by --exe/--comm
    suppressed: int = 0              # "callbacks suppressed": records the kernel did not print
    lost: int = 0                    # audit_lost
    malformed: int = 0
    malformed_lines: tuple[int, ...] = ()   # the first few line numbers
    actions: tuple[tuple[str, int], ...] = ()
    executables: tuple[tuple[str, int], ...] = ()   # kept, per exe

    def summary(self) -> list[str]:
        """One line per fact worth saying, for stderr."""
        out = [f"{self.source}: {self.lines} lines, {self.records} seccomp records, {self.kept} kept"
               + (f" ({', '.join(f'{shown(e)}: {n}' for e, n in self.executables)})" if self.executables else "")]
        if len(self.executables) > 1:
            out.append(f"records of {len(self.executables)} executables kept: --exe/--comm keep one workload's")
        if self.duplicates:
            out.append(f"{self.duplicates} duplicate records (the same audit serial read twice) counted once")
        if self.before_since:
            out.append(f"{self.before_since} records outside the time range left out")
        if self.other_programs:
            n = sum(c for _, c in self.other_programs)
            names = ", ".join(f"{shown(e)} ({c})" for e, c in self.other_programs[:5])
            more = f", and {len(self.other_programs) - 5} more" if len(self.other_programs) > 5 else ""
            out.append(f"{n} records of {len(self.other_programs)} other program(s) left out: {names}{more}")
        return out

    def warnings(self) -> list[str]:
        out = []
        if self.suppressed or self.lost:
            what = []
            if self.suppressed:
                what.append(f"{self.suppressed} not printed (kauditd_printk_skb: callbacks suppressed)")
            if self.lost:
                what.append(f"{self.lost} lost by audit (audit_lost)")
            out.append("the kernel dropped audit records in this log: " + "; ".join(what)
                       + ": syscalls may be missing (the rate limit applies to all programs; run auditd, or "
                         "collect again)")
        if self.malformed:
            lines = ", ".join(map(str, self.malformed_lines)) + (" ..." if self.malformed > len(self.malformed_lines)
                                                                  else "")
            out.append(f"{self.malformed} malformed seccomp record line(s) skipped (line {lines})")
        acts = [f"{a} ({n})" for a, n in self.actions if a != "SECCOMP_RET_LOG"]
        if acts:
            out.append("records of calls that were not only logged but acted on: " + ", ".join(acts)
                       + " (an enforcing filter with logging): the workload failed or died there")
        return out


def shown(text: str) -> str:
    """A name from the log for a status line: control characters escaped (a hex-decoded exe may hold them)."""
    return text if text.isprintable() else text.encode("unicode_escape", "backslashreplace").decode("ascii")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def _value(raw: str, hexfield: bool) -> str:
    """An audit field's value: "quoted", or hex-encoded (audit's way for strings with spaces/quotes)."""
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        if not raw.isprintable():   # audit hex-encodes strings with control characters: not a real record
            raise ValueError("control characters in a quoted value")
        return raw[1:-1]
    if hexfield and raw != "(null)" and len(raw) % 2 == 0 and re.fullmatch(r"[0-9A-Fa-f]+", raw):
        return os.fsdecode(bytes.fromhex(raw))
    return raw


def _action(code: int) -> str:
    full = constants.value("seccomp", "SECCOMP_RET_ACTION_FULL")
    act = code & full
    if act == 0:
        return "SECCOMP_RET_KILL_THREAD"
    return constants.name_of("seccomp", act) or f"{act:#x}"


def _node(prefix: str) -> str:
    """The node a line came from: an explicit 'name: ' prefix, or the syslog/journal host."""
    p = re.sub(r"audit:\s*$", "", prefix)
    m = _NODE.match(p)
    node = ""
    if m and not _SYSLOG.match(p) and not _DMESG.match(p) and not _KMSG.match(p):
        node, p = m.group(1), p[m.end():]
    m = _SYSLOG.match(p)
    if m and not node:
        node = m.group(1)
    return node


def parse_line(line: str, lineno: int) -> LogRecord | None:
    """One line -> a LogRecord; None when the line is not a seccomp record. ValueError when it claims to be
    one (type=1326 / type=SECCOMP) and cannot be read."""
    m = _RECORD.search(line)
    if m is None:
        if _CLAIM.search(line):
            raise ValueError("no audit(TIME:SERIAL)")
        return None
    when, frac, serial, rest = m.groups()
    rest = rest.split("\x1d", 1)[0]   # audit.log's enriched part (AUID="..." ARCH=x86_64 SYSCALL=...)
    fields = {k: v for k, v in _FIELD.findall(rest)}
    for need in ("arch", "syscall", "pid"):
        if need not in fields:
            raise ValueError(f"no {need}=")
    try:
        pid = int(fields["pid"])
        uid = int(fields["uid"]) if "uid" in fields and fields["uid"].isdigit() else None
        if re.fullmatch(r"[0-9a-fA-F]{1,8}", fields["arch"]) and fields["syscall"].isdigit():   # raw record
            nr = int(fields["syscall"])
            arch, tnr = syscalls.from_audit(int(fields["arch"], 16), nr)
            name = syscalls.name(arch, tnr) if not arch.startswith("audit:") else f"#{tnr}"
        else:   # ausearch -i: arch=x86_64 syscall=uname
            arch, name, tnr = _interpreted(fields["arch"], fields["syscall"])
        raw_code = fields.get("code", "0x7ffc0000")
        action = _CODES.get(raw_code.split("=")[0]) if not raw_code.startswith("0x") else _action(int(raw_code, 16))
    except ValueError as exc:
        raise ValueError(f"bad number ({exc})") from None
    if tnr < 0 or pid < 0:
        raise ValueError("negative syscall or pid")
    if when.isdigit():
        t = float(f"{when}.{frac or 0}")
    else:   # ausearch -i: local time
        fmt = "%m/%d/%Y %H:%M:%S" if len(when.split(" ")[0]) == 10 else "%m/%d/%y %H:%M:%S"
        t = datetime.strptime(when, fmt).timestamp() + float(f"0.{frac or 0}")
    return LogRecord(node=_node(line[:m.start()]), time=t, serial=int(serial), pid=pid, uid=uid,
                     comm=_value(fields.get("comm", ""), True), exe=_value(fields.get("exe", ""), True),
                     arch=arch, syscall=name, nr=tnr, action=action or raw_code, line=lineno)


def _interpreted(machine: str, syscall: str) -> tuple[str, str, int]:
    """ausearch -i's arch (a machine name) and syscall (a name, or unknown-syscall(N)) -> (arch, name, nr)."""
    arch = _MACHINES.get(machine, machine)
    if arch not in syscalls.arches():
        raise ValueError(f"unknown machine {machine!r}")
    m = re.fullmatch(r"unknown-syscall\((\d+)\)", syscall)
    if m:
        nr = int(m.group(1))
        return arch, syscalls.name(arch, nr), nr
    nr = syscalls.number(arch, syscall)
    if nr is None:
        raise ValueError(f"{syscall!r} is not a {arch} syscall")
    return arch, syscall, nr


def parse(lines: Iterable[str], filt: LogFilter = LogFilter(), source: str = "log"
          ) -> tuple[list[LogRecord], LogReport]:
    """The records ``filt`` keeps (duplicates dropped), and the report. Pure: never raises on content."""
    kept: list[LogRecord] = []
    seen: set[tuple] = set()
    n_lines = records = dups = before = suppressed = lost = malformed = 0
    bad_lines: list[int] = []
    others: Counter = Counter()
    actions: Counter = Counter()
    for lineno, line in enumerate(lines, 1):
        n_lines += 1
        line = line[:MAX_LINE]
        m = _SUPPRESSED.search(line)
        if m:
            suppressed += int(m.group(1))
            continue
        m = _LOST.search(line)
        if m:
            lost = max(lost, int(m.group(1)))   # audit_lost is a running total
            continue
        try:
            rec = parse_line(line, lineno)
        except (ValueError, KeyError, OverflowError):
            malformed += 1
            if len(bad_lines) < 5:
                bad_lines.append(lineno)
            continue
        if rec is None:
            continue
        records += 1
        if rec.key() in seen:
            dups += 1
            continue
        seen.add(rec.key())
        if not filt.keeps_time(rec):
            before += 1
            continue
        if not filt.keeps_program(rec):
            others[rec.exe or f"comm {rec.comm}"] += 1
            continue
        actions[rec.action] += 1
        kept.append(rec)
    exes = Counter(r.exe or f"comm {r.comm}" for r in kept)
    report = LogReport(source=source, lines=n_lines, records=records, kept=len(kept), duplicates=dups,
                       before_since=before, other_programs=tuple(others.most_common()), suppressed=suppressed,
                       lost=lost, malformed=malformed, malformed_lines=tuple(bad_lines),
                       actions=tuple(sorted(actions.items())), executables=tuple(sorted(exes.items())))
    return kept, report


def to_recording(records: list[LogRecord], report: LogReport, filt: LogFilter = LogFilter()) -> Recording:
    """A Recording of kind ``log`` from kept records (at least one)."""
    if not records:
        raise ValueError("no records")
    counts: dict[str, Counter] = {}
    executables: dict[str, dict[str, set[str]]] = {}
    unknown: dict[str, set[int]] = {}
    for r in records:
        counts.setdefault(r.arch, Counter())[r.syscall] += 1
        if r.exe:
            executables.setdefault(r.exe, {}).setdefault(r.arch, set()).add(r.syscall)
        if r.syscall.startswith("#"):
            unknown.setdefault(r.arch, set()).add(r.nr)
    exes = sorted({r.exe for r in records if r.exe})
    uids = Counter(r.uid for r in records if r.uid is not None)
    pids = sorted({(r.node, r.pid) for r in records})
    nodes = sorted({r.node for r in records if r.node})
    native = syscalls.host_arch()
    arches = set(counts)
    if native not in arches:   # the log's own 64-bit ABI (i386/x32 records come from a 64-bit kernel too)
        wide = sorted(a for a in arches if a not in ("x86", "x32") and not a.startswith("audit:"))
        native = "x86_64" if arches <= {"x86", "x32"} else (wide[0] if wide else native)
    notes = [f"from the seccomp log {shown(report.source)}: {len(records)} records between {_iso(records[0].time)} and "
             f"{_iso(max(r.time for r in records))}, pids "
             + ", ".join((f"{n}/" if n else "") + str(p) for n, p in pids[:20]) + (" ..." if len(pids) > 20 else "")
             + (f", nodes {', '.join(nodes)}" if nodes else "")
             + (f" ({filt.describe()})" if filt.describe() else ""),
             "a log shows only the calls the staged profile did not allow: no arguments, files, network or "
             "capabilities"]
    notes += report.warnings()
    return Recording(
        id=uuid.uuid4().hex[:12], command=(exes[0],) if len(exes) == 1 else (f"log:{report.source}",),
        cwd="", started=min(r.time for r in records), ended=max(r.time for r in records), backend=BACKEND,
        kernel="", host_arch=native, uid=uids.most_common(1)[0][0] if uids else -1, gid=-1, user="",
        exit_status=None, complete=not (report.suppressed or report.lost), target=f"log:{report.source}",
        interrupted="the kernel dropped records (rate limit)" if (report.suppressed or report.lost) else "",
        syscalls={a: {n: SyscallStat(c) for n, c in t.items()} for a, t in counts.items()},
        executables={e: {a: frozenset(s) for a, s in t.items()} for e, t in executables.items()},
        unknown_syscalls={a: tuple(sorted(v)) for a, v in unknown.items()},
        lost_events=report.suppressed + report.lost, notes=tuple(notes),
    )


# ---------------------------------------------------------------- reading a source

def _kmsg_lines(fd: int) -> Iterator[str]:
    """/dev/kmsg: one record per read, non-blocking until the end of the buffer."""
    while True:
        try:
            data = os.read(fd, 16384)
        except BlockingIOError:
            return
        except BrokenPipeError:   # EPIPE: records were overwritten before we read them
            continue
        if not data:
            return
        for ln in data.decode("utf-8", "replace").splitlines():
            yield ln


def _text_lines(fh: IO[bytes]) -> Iterator[str]:
    """Lines of at most MAX_LINE bytes (the rest of a longer one is skipped: no log line is that long, and a
    file without newlines must not be read into memory whole)."""
    while True:
        raw = fh.readline(MAX_LINE)
        if not raw:
            return
        if len(raw) == MAX_LINE and not raw.endswith(b"\n"):
            while True:   # skip to the end of this line
                rest = fh.readline(MAX_LINE)
                if not rest or rest.endswith(b"\n"):
                    break
        yield raw.decode("utf-8", "replace").rstrip("\r\n")


def read_lines(source: str) -> Iterator[str]:
    """The lines of SOURCE: a file, ``-`` (stdin), or /dev/kmsg (read to its current end)."""
    if source == "-":
        yield from _text_lines(sys.stdin.buffer)
        return
    try:
        st = os.stat(source)
    except OSError as exc:
        raise UserError(f"{source}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{source}: is a directory, expected a log file")
    if stat.S_ISCHR(st.st_mode):
        try:
            fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise UserError(f"{source}: {exc.strerror}"
                            + (" (reading the kernel log needs root)" if exc.errno == 1 or exc.errno == 13 else "")
                            ) from None
        try:
            yield from _kmsg_lines(fd)
        finally:
            os.close(fd)
        return
    try:
        fh = open(source, "rb")
    except OSError as exc:
        raise UserError(f"{source}: {exc.strerror}") from None
    with fh:
        yield from _text_lines(fh)


def looks_like_log(path: str) -> bool:
    """Whether PATH is a log rather than a JSON profile/recording (check, merge, diff accept both)."""
    try:
        st = os.stat(path)
        if stat.S_ISCHR(st.st_mode):   # /dev/kmsg only: any other device (a link to /dev/zero) is refused unread
            return (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 11)
        if not stat.S_ISREG(st.st_mode):
            return False
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError:
        return False
    text = head.lstrip()
    return not text.startswith(b"{") and (b"type=1326" in head or b"type=SECCOMP" in head)


def load(source: str, filt: LogFilter = LogFilter()) -> tuple[Recording, LogReport]:
    """Read SOURCE and build the Recording; a UserError when nothing is left to add."""
    records, report = parse(read_lines(source), filt, source)
    if not records:
        why = (f"{report.records} seccomp records, none kept ({filt.describe()})" if report.records
               else "no seccomp records (audit type 1326 / type=SECCOMP)")
        extra = report.warnings()
        raise UserError(f"{source}: {why} in {report.lines} lines" + (f"; {extra[0]}" if extra else ""))
    return to_recording(records, report, filt), report


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")


def parse_since(text: str, now: float | None = None) -> float:
    """--since: an ISO-8601 time (local time unless it has a zone), @EPOCH, or a duration ago (30m, 2h, 1d)."""
    now = time.time() if now is None else now
    t = text.strip()
    m = _DURATION.match(t)
    if m:
        return now - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if t.startswith("@"):
        try:
            return float(t[1:])
        except ValueError:
            pass
    else:
        try:
            return datetime.fromisoformat(t).timestamp()
        except ValueError:
            pass
    raise UserError(f"--since: {text!r} is not a time (2026-11-30T04:00:00, @1764475200, or 30m / 2h / 1d ago)")
