"""Static reachability (leastpriv reach): traced ⊆ reachable on real programs, and the models it relies on.

The soundness suite learns real programs on realistic workloads (a C server on 127.0.0.1, a key-value
server, a database, git, Python running a script, coreutils, a Go binary, a program that dlopens a
library) and asserts that ``reach`` finds every syscall the trace saw (``missed`` is empty). Small
programs of ours cover a dangerous call on a rare path, function-pointer dispatch, syscall(2), a
DT_RELR-relocated table and a dlopen'ed library. Object summaries are cached for the session in one
directory, so glibc is analysed once.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import WORKLOADS, lp, which

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="session")
def reach_cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("reach-cache") / "c"
    os.environ["LEASTPRIV_REACH_CACHE"] = str(d)   # inherited by the leastpriv subprocesses
    yield d
    os.environ.pop("LEASTPRIV_REACH_CACHE", None)


def learn(prof: Path, *cmd: str, timeout: float = 120, **kw) -> None:
    lp("learn", "--backend", "ptrace", "-o", str(prof), "--", *cmd, check=True, timeout=timeout, **kw)


def reach_json(*args: str) -> dict:
    r = lp("reach", *args, "--format", "json", check=True, timeout=180)
    return json.loads(r.stdout)


def assert_sound(prof: Path, min_exes: int = 1) -> dict:
    """The soundness check: every syscall a run saw is statically reachable; returns the report."""
    d = reach_json(str(prof))
    assert d["missed"] == [], f"seen but not reachable: {d['missed']}"
    analysed = [e for e in d["executables"] if e["reachable"] is not None]
    assert len(analysed) >= min_exes, d["executables"]
    for e in analysed:
        seen = set(e["seen_by_abi"].get("x86_64", [])) - set(e["started_by_exec"])
        assert seen <= set(e["reachable"]), (e["path"], seen - set(e["reachable"]))
        assert len(e["reachable"]) >= len(seen) and e["unknown_sites"] >= 0
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"port {port} never opened")


def http_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def learn_server(prof: Path, cmd: list[str], port: int, client, stop) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "leastpriv", "learn", "--backend", "ptrace", "-o", str(prof),
                             "--", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, proc)
        client()
        stop()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert prof.exists(), proc.stderr.read()


# ----------------------------------------------------------------------- the soundness suite

def test_nginx_serving_on_loopback_is_covered(reach_cache, tmp_path):
    nginx = which("nginx")
    port = free_port()
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("hello from nginx\n")
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""daemon off; master_process on; worker_processes 1; user root;
pid {tmp_path}/nginx.pid; error_log {tmp_path}/logs/error.log;
events {{ worker_connections 64; }}
http {{ access_log {tmp_path}/logs/access.log;
  client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy; fastcgi_temp_path {tmp_path}/fcgi;
  uwsgi_temp_path {tmp_path}/uwsgi; scgi_temp_path {tmp_path}/scgi;
  server {{ listen 127.0.0.1:{port}; root {tmp_path}/www; }} }}
""")
    prof = tmp_path / "nginx.json"

    def client():
        assert b"hello from nginx" in http_get(port, "/")
        assert b"404" in http_get(port, "/missing")

    def stop():
        os.kill(int((tmp_path / "nginx.pid").read_text()), signal.SIGQUIT)

    learn_server(prof, [nginx, "-p", str(tmp_path), "-c", str(conf)], port, client, stop)
    d = assert_sound(prof)
    e = next(e for e in d["executables"] if e["path"].endswith("nginx"))
    assert {"accept4", "epoll_wait", "sendfile", "setuid"} <= set(e["reachable"])
    # the worker looks up "nobody": the NSS modules are part of the analysis
    assert any(o["role"] == "nss" for o in e["objects"])


def test_redis_server_is_covered(reach_cache, tmp_path):
    redis = which("redis-server")
    port = free_port()
    prof = tmp_path / "redis.json"

    def cmd(*words: str) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(("".join(f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words))).encode())
            return s.recv(4096)

    def client():
        assert cmd("PING") == b"+PONG\r\n"
        assert cmd("SET", "k", "v") == b"+OK\r\n"
        assert cmd("GET", "k") == b"$1\r\nv\r\n"

    def stop():
        try:
            cmd("SHUTDOWN", "NOSAVE")
        except OSError:
            pass

    learn_server(prof, [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--dir", str(tmp_path)], port, client, stop)
    assert_sound(prof)


def test_sqlite3_is_covered(reach_cache, tmp_path):
    sqlite3 = which("sqlite3")
    prof = tmp_path / "sqlite.json"
    script = ("create table t(a integer primary key, b text);"
              "begin; insert into t(b) values ('x'),('y'),('z'); commit;"
              "create index i on t(b); select count(*), max(b) from t; vacuum;")
    learn(prof, sqlite3, str(tmp_path / "db.sqlite"), script)
    d = assert_sound(prof)
    e = d["executables"][0]
    assert {"fdatasync", "pwrite64", "fcntl"} <= set(e["reachable"])   # the unix VFS, reached through pointers


def test_git_is_covered(reach_cache, tmp_path):
    git = which("git")
    prof = tmp_path / "git.json"
    work = tmp_path / "repo"
    script = (f"{git} init -q {work} && cd {work} && {git} config user.email t@e && {git} config user.name t && "
              f"echo hello > a && {git} add a && {git} commit -qm one && echo more >> a && {git} diff --stat && "
              f"{git} commit -qam two && {git} log --oneline && {git} status --short")
    learn(prof, "/bin/sh", "-c", script)
    d = assert_sound(prof, min_exes=2)   # sh and git
    assert any(e["path"].endswith("/git") for e in d["executables"])


def test_python_running_a_script_is_covered(reach_cache, tmp_path):
    script = tmp_path / "work.py"
    script.write_text(
        "import json, hashlib, socket, subprocess, tempfile, threading, time\n"
        "def worker(n, out):\n    out.append(hashlib.sha256(str(n).encode()).hexdigest())\n"
        "out = []\nts = [threading.Thread(target=worker, args=(i, out)) for i in range(4)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    p = d + '/x.json'\n    open(p, 'w').write(json.dumps(out))\n    assert len(json.load(open(p))) == 4\n"
        "a, b = socket.socketpair(); a.sendall(b'ping'); assert b.recv(4) == b'ping'\n"
        "subprocess.run(['/bin/true'], check=True); time.sleep(0.01); print('ok')\n")
    prof = tmp_path / "py.json"
    learn(prof, "/usr/bin/python3.11", str(script))
    d = assert_sound(prof, min_exes=1)
    e = next(e for e in d["executables"] if "python3" in e["path"])
    # the extension modules Python dlopen'ed (_hashlib, _json from lib-dynload) are analysed, with their libraries
    assert any("_hashlib" in p for p in d["dlopened"]), d["dlopened"]
    roles = {os.path.basename(o["path"]): o["role"] for o in e["objects"]}
    assert any(n.startswith("_hashlib") and r == "dlopen" for n, r in roles.items())
    assert any(n.startswith("libcrypto") for n in roles)


def test_coreutils_are_covered(reach_cache, tmp_path):
    prof = tmp_path / "core.json"
    script = (f"ls -l /etc > /dev/null; sort /etc/passwd | head -3; tar -cf - /etc/hostname 2>/dev/null | wc -c; "
              f"date; cp /etc/hostname {tmp_path}/x; stat {tmp_path}/x > /dev/null; sha256sum {tmp_path}/x")
    learn(prof, "/bin/sh", "-c", script)
    d = assert_sound(prof, min_exes=6)
    assert {os.path.basename(e["path"]) for e in d["executables"]} >= {"ls", "sort", "tar", "cp"}


def test_go_binary_runc_is_covered(reach_cache, tmp_path):
    runc = which("runc")
    prof = tmp_path / "runc.json"
    state = tmp_path / "state"
    script = (f"cd {tmp_path} && {runc} spec && {runc} --root {state} list && "
              f"({runc} --root {state} state nosuch 2>/dev/null; true) && {runc} --version")
    learn(prof, "/bin/sh", "-c", script)
    d = assert_sound(prof, min_exes=2)
    e = next(e for e in d["executables"] if e["path"].endswith("runc"))
    assert any("Go binary" in n for n in e["notes"])
    assert any("Syscall6" in w for w in e["wrappers"])


def test_dlopened_library_is_analysed(reach_cache, build_c, tmp_path):
    main = build_c("reach_dlopen")
    plugin = tmp_path / "libreach_plugin.so"
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(plugin), str(WORKLOADS / "reach_plugin.c")],
                   check=True)
    prof = tmp_path / "dl.json"
    learn(prof, str(main), str(plugin))
    d = assert_sound(prof)
    assert str(plugin) in d["dlopened"]
    e = d["executables"][0]
    assert "membarrier" in e["seen"] and "membarrier" in e["reachable"]
    # without the plugin, nothing reaches membarrier: the dlopen'ed object is what makes it reachable
    alone = reach_json("--exe", str(main))["executables"][0]
    assert "membarrier" not in alone["reachable"]
    with_dl = reach_json("--exe", str(main), "--dlopen", str(plugin))["executables"][0]
    assert "membarrier" in with_dl["reachable"]


# ------------------------------------------------------------------------ the models

def test_dangerous_call_on_a_rare_path_is_reachable_but_unseen(reach_cache, build_c, tmp_path):
    exe = build_c("reach_rare")
    prof = tmp_path / "rare.json"
    learn(prof, str(exe))
    d = assert_sound(prof)
    e = d["executables"][0]
    assert {"unshare", "bpf"} <= set(e["dangerous_reachable_unseen"]), e["dangerous_reachable_unseen"]
    assert not {"unshare", "bpf"} & set(e["seen"])
    # syscall(2): bpf's number is passed in rdi to libc's wrapper
    assert any(w.startswith("syscall ") and "number in rdi" in w for w in e["wrappers"])
    review = json.loads(lp("review", str(prof), "--format", "json", check=True).stdout)
    assert review["reach"]["executables"][0]["dangerous_reachable_unseen"]
    assert "reachable but never seen: bpf" in review["reach"]["verdict"]
    text = lp("review", str(prof), check=True).stdout
    assert "dangerous, reachable, never seen" in text and "unshare" in text
    shown = lp("show", str(prof), check=True).stdout
    assert "reachable" in shown and "upper bound" in shown and "seen" in shown
    # the rare path taken: now seen, no longer "unseen"
    learn(prof, str(exe), "--rare")
    d = assert_sound(prof)
    assert not {"unshare", "bpf"} & set(d["executables"][0]["dangerous_reachable_unseen"])


def test_no_dangerous_syscall_reachable_is_said(reach_cache, tmp_path):
    prof = tmp_path / "true.json"
    learn(prof, "/bin/true")
    review = json.loads(lp("review", str(prof), "--format", "json", check=True).stdout)
    e = review["reach"]["executables"][0]
    if not e["dangerous_reachable_unseen"]:
        assert review["reach"]["verdict"].startswith("no dangerous syscall reachable")
        assert "unknown syscall sites" in review["reach"]["verdict"]


def test_function_pointer_table_ops_are_reachable_and_ranked(reach_cache, build_c, tmp_path):
    exe = build_c("reach_fnptr")
    prof = tmp_path / "fn.json"
    learn(prof, str(exe), "sync")
    d = assert_sound(prof)
    e = d["executables"][0]
    assert "fdatasync" in e["seen"]
    ops = {"flock", "fadvise64", "readahead"}
    assert ops <= set(e["reachable"]) and not ops & set(e["seen"])
    cands = [c["syscall"] for c in e["possibly_needed"]]
    assert ops <= set(cands)
    # the candidate was right: another input uses it; nothing was added to the profile by reach
    before = json.loads(prof.read_text())["rules"]
    assert "flock" not in json.dumps(before)
    learn(prof, str(exe), "lock")
    assert "flock" in reach_json(str(prof))["executables"][0]["seen"]


def test_dt_relr_relocated_table(reach_cache, tmp_path):
    from elftools.elf.elffile import ELFFile

    from leastpriv.reach import elf as relf

    exe = tmp_path / "fnptr-relr"
    subprocess.run(["gcc", "-O1", "-Wl,-z,pack-relative-relocs", "-o", str(exe), str(WORKLOADS / "reach_fnptr.c")],
                   check=True)
    with open(exe, "rb") as fh:
        ef = ELFFile(fh)
        tags = {t.entry.d_tag for t in ef.get_section_by_name(".dynamic").iter_tags()}
        relative = [r for s in ef.iter_sections() if s["sh_type"] == "SHT_RELA"
                    for r in s.iter_relocations() if r["r_info_type"] == relf.R_X86_64_RELATIVE]
        ops = {s.name: s["st_value"] for s in ef.get_section_by_name(".symtab").iter_symbols()
               if s.name.startswith("op_")}
    assert relf.DT_RELR in tags or "DT_RELR" in tags
    assert relative == [], "the table must be relocated by DT_RELR alone"
    assert len(ops) == 4
    loaded = relf.load(str(exe))
    assert set(ops.values()) <= set(loaded.data_pointers), "DT_RELR-relocated function pointers not decoded"
    e = reach_json("--exe", str(exe))["executables"][0]
    assert {"fdatasync", "flock", "fadvise64", "readahead"} <= set(e["reachable"])


def test_decode_relr_bitmap():
    from leastpriv.reach.elf import decode_relr
    # an address, then a bitmap: bit 0 is the marker; bits 1 and 3 -> the 1st and 3rd words after it
    assert decode_relr([0x1000, (0b101 << 1) | 1]) == [0x1000, 0x1008, 0x1018]
    assert decode_relr([0x2000, 1 | (1 << 63)]) == [0x2000, 0x2000 + 8 + 62 * 8]


def test_cache_is_private_and_reused(reach_cache, tmp_path):
    d = reach_json("--exe", "/bin/true")
    assert d["executables"][0]["build_id"]
    st = os.stat(reach_cache)
    assert stat.S_IMODE(st.st_mode) == 0o700
    files = list(reach_cache.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert any(f.name.startswith(d["executables"][0]["build_id"]) for f in files)


def test_bad_input_is_one_line_exit_2(reach_cache, tmp_path):
    r = lp("reach", "--exe", "/etc/passwd")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "not an ELF file" in r.stderr
    r = lp("reach")
    assert r.returncode == 2
    junk = tmp_path / "junk.json"
    junk.write_text("{}")
    r = lp("reach", str(junk))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_i386_objects_are_refused_plainly(reach_cache, build_c):
    exe = build_c("reach_rare", m32=True)
    r = lp("reach", "--exe", str(exe))
    assert r.returncode == 2 and "only x86-64" in r.stderr


def test_container_executables_are_not_read_from_the_host(reach_cache):
    from leastpriv.reach.coverage import coverage, review_section
    facts = {"executables": {"/bin/sh": {"x86_64": ["read", "write"]}}, "files": {}}
    cov = coverage(facts, runs=[{"target": "image:app.tar"}])
    assert cov.executables[0].reach is None and "container" in cov.executables[0].error
    assert "inside the container image" in review_section(facts, [{"target": "bundle:/b"}])["verdict"]
    assert coverage(facts).executables[0].reach is not None    # the same path from a host run is analysed


def test_program_cache_notices_a_changed_executable(reach_cache, build_c, tmp_path):
    exe = tmp_path / "prog"
    shutil.copy(build_c("reach_rare"), exe)
    assert "bpf" in reach_json("--exe", str(exe))["executables"][0]["reachable"]
    assert "bpf" in reach_json("--exe", str(exe))["executables"][0]["reachable"]       # from the cache
    shutil.copy(build_c("reach_fnptr"), exe)                                            # same path, new build-id
    again = reach_json("--exe", str(exe))["executables"][0]
    assert "bpf" not in again["reachable"] and "flock" in again["reachable"]


def test_int_0x80_in_64_bit_code_is_resolved_under_the_i386_abi(reach_cache, build_c, tmp_path):
    exe = build_c("reach_int80")
    prof = tmp_path / "int80.json"
    learn(prof, str(exe))
    d = assert_sound(prof)
    e = d["executables"][0]
    assert e["seen_by_abi"]["x86"] == ["getpid"]
    assert e["reachable_by_abi"]["x86"] == ["getpid"]
    assert "+1 x86" in lp("show", str(prof), check=True).stdout


def test_a_script_is_analysed_through_its_interpreter(reach_cache, tmp_path):
    from leastpriv.reach.coverage import coverage
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    e = coverage({"executables": {str(script): {"x86_64": ["write", "execve"]}}, "files": {}}).executables[0]
    assert e.reach is not None and "write" in e.reachable and not e.missed
    assert any("interpreter /bin/sh" in n for n in e.reach.notes)


def test_corrupted_elf_files_are_refused_in_one_line(reach_cache, tmp_path):
    import random
    src = Path("/bin/true").read_bytes()
    for seed in (38, 53, 7):   # seeds found by fuzzing: pyelftools' OverflowError and AssertionError among them
        rnd = random.Random(seed)
        d = bytearray(src)
        for _ in range(rnd.choice([5, 50, 500])):
            pos = rnd.randrange(0, 4096) if rnd.random() < 0.5 else rnd.randrange(64, len(d))
            if pos >= 64 or rnd.random() < 0.3:
                d[pos] = rnd.randrange(256)
        bad = tmp_path / f"bad{seed}"
        bad.write_bytes(bytes(d))
        r = lp("reach", "--exe", str(bad), "--format", "json")
        assert "Traceback" not in r.stderr
        assert r.returncode == 0 or (r.returncode == 2 and r.stderr.count("\n") == 1), r.stderr
    (tmp_path / "short").write_bytes(src[:100])
    r = lp("reach", "--exe", str(tmp_path / "short"))
    assert r.returncode == 2 and "malformed ELF" in r.stderr


def test_a_fifo_or_device_named_by_a_profile_is_not_opened_for_reading(reach_cache, tmp_path):
    from leastpriv.reach.coverage import coverage
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cov = coverage({"executables": {str(fifo): {"x86_64": ["read"]}, "/dev/zero": {}}, "files": {str(fifo): ["read"]}})
    assert all(e.reach is None and "not a regular file" in e.error for e in cov.executables)
