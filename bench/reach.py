#!/usr/bin/env python3
"""`make bench-reach` (part of `make bench`): static reachability per program.

For each program: learn it on a short realistic workload (ptrace), then analyse it (the executable,
its interpreter and libraries, the objects the run opened, NSS modules, vDSO) twice in fresh
processes: cold (an empty cache: every object disassembled, glibc included) and cached (every
object summary read from the build-id cache). Prints one table: traced syscalls, reachable
(upper bound), unknown sites, dangerous reachable, cold and cached analysis time (in-process,
without the interpreter's start-up) and peak memory (max RSS of the analysing process).
Goal on the 2-vCPU development VM: cold <= 10 s, cached <= 0.5 s. Options: --only NAME.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEASTPRIV = [sys.executable, "-m", "leastpriv"]

ANALYSE = r"""
import json, resource, sys, time
from leastpriv.reach.coverage import coverage, to_json
facts = json.load(open(sys.argv[1]))
t = time.monotonic()
r0 = resource.getrusage(resource.RUSAGE_SELF)
cov = coverage(facts)
dt = time.monotonic() - t
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(json.dumps({"seconds": dt, "cpu": cpu, "maxrss_mb": r1.ru_maxrss / 1024,
                  "report": to_json(cov)}))
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError("server exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not listen")


def _get(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while s.recv(65536):
            pass


def learn(prof: str, cmd: list[str]) -> None:
    subprocess.run(LEASTPRIV + ["learn", "--backend", "ptrace", "-o", prof, "--", *cmd], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def learn_server(prof: str, cmd: list[str], port: int, client, stop) -> None:
    proc = subprocess.Popen(LEASTPRIV + ["learn", "--backend", "ptrace", "-o", prof, "--", *cmd],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port, proc)
        client()
        stop()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def nginx(tmp: str, prof: str) -> str:
    port = _port()
    os.makedirs(f"{tmp}/www", exist_ok=True)
    Path(f"{tmp}/www/index.html").write_text("hi\n")
    conf = f"{tmp}/nginx.conf"
    Path(conf).write_text(
        f"daemon off; master_process on; worker_processes 1; user root; pid {tmp}/nginx.pid; "
        f"error_log {tmp}/error.log; events {{ worker_connections 64; }} http {{ access_log {tmp}/access.log; "
        f"client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f; "
        f"uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s; server {{ listen 127.0.0.1:{port}; root {tmp}/www; }} }}")
    learn_server(prof, ["nginx", "-p", tmp, "-c", conf], port, lambda: (_get(port), _get(port)),
                 lambda: os.kill(int(Path(f"{tmp}/nginx.pid").read_text()), signal.SIGQUIT))
    return "nginx"


def redis(tmp: str, prof: str) -> str:
    port = _port()

    def cmd(*w: str) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(("*%d\r\n" % len(w) + "".join(f"${len(x)}\r\n{x}\r\n" for x in w)).encode())
            s.recv(4096)

    def stop() -> None:
        try:
            cmd("SHUTDOWN", "NOSAVE")
        except OSError:
            pass

    learn_server(prof, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp],
                 port, lambda: (cmd("SET", "a", "b"), cmd("GET", "a")), stop)
    return "redis-server"


def programs(tmp: str) -> list[tuple[str, object]]:
    py = Path(tmp) / "w.py"
    py.write_text("import json, threading, subprocess\nt = threading.Thread(target=lambda: None); t.start(); "
                  "t.join()\nprint(json.dumps({'a': 1})); subprocess.run(['true'])\n")
    return [
        ("sqlite3", lambda p: learn(p, ["sqlite3", f"{tmp}/db", "create table t(a); insert into t values(1); "
                                                                "select * from t;"])),
        ("nginx", lambda p: nginx(tmp, p)),
        ("git", lambda p: learn(p, ["git", "-C", tmp, "init", "-q", f"{tmp}/repo"])),
        ("redis-server", lambda p: redis(tmp, p)),
        ("python3.11", lambda p: learn(p, ["python3.11", str(py)])),
        ("ls", lambda p: learn(p, ["ls", "-l", "/etc"])),
        ("runc", lambda p: learn(p, ["runc", "--version"])),
    ]


def analyse(facts_file: str, cache: str) -> dict:
    env = dict(os.environ, LEASTPRIV_REACH_CACHE=cache, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", ANALYSE, facts_file], check=True, capture_output=True, text=True,
                         env=env)
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    print("\n## static reachability (leastpriv reach): cold = empty cache, cached = build-id cache\n")
    head = ["program", "traced", "reachable", "unknown sites", "dangerous reachable", "cold s (CPU s)",
            "cached s (CPU s)", "peak MB", "missed"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    with tempfile.TemporaryDirectory(prefix="lp-bench-reach-") as tmp:
        for name, run in programs(tmp):
            if args.only and args.only not in name:
                continue
            if shutil.which(name) is None:
                print(f"| {name} | not installed |")
                continue
            prof = f"{tmp}/{name}.json"
            try:
                run(prof)
            except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
                print(f"| {name} | learn failed: {exc} |")
                continue
            facts = json.load(open(prof))["facts"]
            real = os.path.realpath(shutil.which(name))
            exe = next((e for e in sorted(facts["executables"]) if os.path.basename(e).startswith(name)
                        or os.path.realpath(e) == real), None)
            if exe is None:
                print(f"| {name} | no executable named {name} in the profile |")
                continue
            facts = dict(facts, executables={exe: facts["executables"][exe]})
            ffile = f"{tmp}/{name}.facts.json"
            Path(ffile).write_text(json.dumps(facts))
            cache = tempfile.mkdtemp(prefix="cache-", dir=tmp)
            cold = analyse(ffile, cache)
            warm = analyse(ffile, cache)
            e = cold["report"]["executables"][0]
            traced = len(e["seen"])
            print(f"| {name} | {traced} | {len(e['reachable'] or [])} | {e['unknown_sites']} | "
                  f"{', '.join(e['dangerous_reachable'] or []) or 'none'} | {cold['seconds']:.2f} ({cold['cpu']:.2f}) | "
                  f"{warm['seconds']:.2f} ({warm['cpu']:.2f}) | {max(cold['maxrss_mb'], warm['maxrss_mb']):.0f} | "
                  f"{len(cold['report']['missed'])} |", flush=True)
    print("\ncold: every object of the process analysed from scratch (glibc, ld.so, libraries, vDSO);"
          " cached: the whole-program result and the per-build-id summaries read from the cache (after checking"
          " every object's build-id); times exclude Python start-up; wall time, and in parentheses the CPU time of the "
          "analysing process (what it costs on an idle machine). Load average during the run: "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
