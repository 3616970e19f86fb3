"""Shared test helpers: run the real CLI, build small C workloads.

Each area's tests live in their own tests/test_<area>*.py; add fixtures for
one area there, not here, unless several areas need them.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

# A shell starts a background job (`make test &` in a script) with SIGINT and SIGQUIT ignored, and an ignored
# signal stays ignored across exec: every process the tests start (leastpriv, the workloads, the "bare" runs
# they are compared with) would then ignore the SIGINT a test sends. The tests are about the default.
for _s in (signal.SIGINT, signal.SIGQUIT):
    if signal.getsignal(_s) == signal.SIG_IGN:
        signal.signal(_s, signal.default_int_handler if _s == signal.SIGINT else signal.SIG_DFL)

ROOT = Path(__file__).resolve().parent.parent


def _plain_workloads() -> Path:
    """tests/workloads, at a path the learner keeps literal.

    A checkout whose path has a component that looks generated (a mktemp name: ``/tmp/ci-final2`` reads
    as ``ci-XXXXXX``) makes the learner generalize the workloads' own paths (``/tmp/ci-*/tests/...``), and
    Landlock, which cannot express a glob, grants such a pattern on its literal base (``/tmp``): the tests
    that prove a file outside the profile is denied would then find all of /tmp allowed. Such a checkout
    runs a copy of tests/workloads at a plain name (lower-case letters from a hash of the checkout's path,
    which no rule of the learner takes for a generated name)."""
    from leastpriv.learner.patterns import shape

    src = Path(__file__).resolve().parent / "workloads"
    probe = str(src / "probe.sh")
    if shape(probe) == probe:
        return src
    letters = "".join(chr(ord("a") + b % 26) for b in hashlib.sha256(str(src).encode()).digest()[:10])
    dst = Path(f"/tmp/lp-workloads-{letters}")
    try:
        os.mkdir(dst, 0o755)
    except FileExistsError:   # a name in /tmp: ours (an earlier session) or refused, never followed
        st = os.lstat(dst)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise RuntimeError(f"{dst} exists and is not this user's own directory: remove it") from None
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    return dst


WORKLOADS = _plain_workloads()
SHARED = ROOT.parent / "shared" / "reference"
IS_ROOT = os.geteuid() == 0


def lp(*args: str, check: bool = False, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run ``leastpriv ARGS`` as a user would (a real process), capturing text output."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    proc = subprocess.run([sys.executable, "-m", "leastpriv", *args], timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"leastpriv {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def lp_in_process(*args: str) -> subprocess.CompletedProcess:
    """``leastpriv ARGS`` run in this process, for tests that make thousands of calls: leastpriv.cli.main with
    stdin empty and stdout/stderr captured through strict UTF-8 streams (as a UTF-8 terminal or pipe would be).
    An exception that escapes main is a traceback on stderr and exit 1, as in a real process."""
    import io
    import traceback

    from leastpriv.cli import main

    saved = sys.stdin, sys.stdout, sys.stderr
    out, err = io.BytesIO(), io.BytesIO()
    streams = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8"),   # (kept: a wrapper closes its buffer when freed)
               io.TextIOWrapper(out, encoding="utf-8", errors="strict", write_through=True),
               io.TextIOWrapper(err, encoding="utf-8", errors="strict", write_through=True))
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        main(list(args))
        code = 0   # (main always exits)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except Exception:  # noqa: BLE001 - what a real process would print
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
    return subprocess.CompletedProcess(list(args), code, out.getvalue().decode(), err.getvalue().decode())


@pytest.fixture(scope="session")
def build_c(tmp_path_factory):
    """Compile tests/workloads/NAME.c (cached per session). ``m32=True`` builds an i386 binary."""
    out_dir = tmp_path_factory.mktemp("bin")
    cache: dict = {}

    def build(name: str, m32: bool = False, static: bool = False) -> Path:
        key = (name, m32, static)
        if key not in cache:
            src = WORKLOADS / f"{name}.c"
            exe = out_dir / (name + ("-32" if m32 else "") + ("-static" if static else ""))
            cmd = ["gcc", "-O1", "-o", str(exe), str(src)] + (["-m32"] if m32 else []) + (["-static"] if static else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise AssertionError(f"cannot build {src}: {proc.stderr}")
            cache[key] = exe
        return cache[key]

    return build


@pytest.fixture
def shared_reference() -> Path:
    if not SHARED.exists():
        pytest.fail(f"{SHARED} is missing: the tests validate against ../shared/reference")
    return SHARED


def need(ok: bool, why: str) -> None:
    """A test's precondition: it fails loudly in CI (root, eBPF, BTF, cgroup2, runc and apparmor_parser
    are all there after `make install`) and skips elsewhere."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{why}, and CI has it")
        pytest.skip(why)


def need_root() -> None:
    """Tests that need root fail loudly in CI (which runs as root) and skip elsewhere."""
    need(IS_ROOT, "this test needs root")


def need_ebpf() -> None:
    """Root and a usable eBPF backend; CI has both (`make install` sets eBPF up), so this fails, never skips."""
    need_root()
    from leastpriv.tracer.ebpf import usable_reason
    why = usable_reason()
    if why:
        pytest.fail(f"eBPF is not usable here ({why}); `make install` sets it up")


def which(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: `make install` installs it")
    return path
