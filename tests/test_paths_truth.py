"""File facts are the paths the kernel opened (root: both backends): for tar of a 520-file tree, find
over a tree from a relative start, git status / git commit, and a C program that opens through dirfds,
chdirs, follows symlinks and .. and exits right after its last open, the files recorded by eBPF equal
those recorded by ptrace equal the ground truth (the tree's listing, or strace -f -y), and every path
recorded as read exists. `check` sees a new file read and a new exec, relative and absolute names."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from leastpriv.tracer.recording import Recording

from .conftest import lp, need_ebpf

pytestmark = pytest.mark.timeout(300)
BACKENDS = ("ptrace", "ebpf")


@pytest.fixture(autouse=True)
def _root():
    need_ebpf()


def _learn(backend: str, argv: list[str], cwd: Path, out: Path, env: dict | None = None) -> Recording:
    rec = out / f"rec-{backend}-{time.monotonic_ns()}.json"
    proc = lp("learn", "--backend", backend, "-o", str(out / f"p-{time.monotonic_ns()}.json"),
              "--save-recording", str(rec), "--", *argv, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = Recording.load(str(rec))
    assert r.lost_events == 0 and not any("left out" in n for n in r.notes), r.notes
    return r


def _under(rec: Recording, top: Path) -> dict[str, frozenset[str]]:
    t = str(top)
    return {p: a for p, a in rec.files.items() if p == t or p.startswith(t + "/")}


def _no_phantoms(rec: Recording) -> None:
    """Every path recorded only as read or exec exists (created/removed ones may be gone by now)."""
    ghosts = [p for p, acc in rec.files.items() if acc <= {"read", "exec"} and not os.path.lexists(p)]
    assert not ghosts, f"{rec.backend} recorded paths that do not exist: {ghosts[:10]}"


def _tree(top: Path, n_dirs: int = 26, per_dir: int = 20) -> None:
    for i in range(n_dirs):
        d = top / f"dir{i:02d}" / ("deeper" if i % 3 == 0 else "") / ("x" * 40 if i % 5 == 0 else "")
        d.mkdir(parents=True, exist_ok=True)
        for j in range(per_dir):
            (d / f"file{j:02d}.txt").write_text(f"{i} {j}\n")


def _listing(top: Path, dirs_only: bool = False) -> set[str]:
    out = {str(top)}
    for root, dirs, files in os.walk(top):
        out |= {os.path.join(root, d) for d in dirs if not os.path.islink(os.path.join(root, d))}
        if not dirs_only:
            out |= {os.path.join(root, f) for f in files}
    return out


def test_tar_of_a_520_file_tree(tmp_path):
    tree = tmp_path / "tree"
    _tree(tree)
    truth = _listing(tree)
    assert len([p for p in truth if p.endswith(".txt")]) >= 500
    seen = {}
    for backend in BACKENDS:
        (tmp_path / "out.tar").unlink(missing_ok=True)
        rec = _learn(backend, ["tar", "-cf", "out.tar", "tree"], tmp_path, tmp_path)
        files = _under(rec, tree)
        assert set(files) == truth, (backend, sorted(set(files) ^ truth)[:10])
        assert all(acc == {"read"} for acc in files.values())
        assert rec.files.get(str(tmp_path / "out.tar"), set()) >= {"write", "create"}
        _no_phantoms(rec)
        seen[backend] = rec.files
    assert seen["ptrace"] == seen["ebpf"]


def test_find_from_a_relative_start(tmp_path):
    tree = tmp_path / "tree"
    _tree(tree, n_dirs=12, per_dir=3)
    (tree / "dir01" / "up").symlink_to("..")        # find does not follow it: never opened
    truth = _listing(tree, dirs_only=True)
    seen = {}
    for backend in BACKENDS:
        rec = _learn(backend, ["find", "tree", "-name", "file01.txt"], tmp_path, tmp_path)
        files = _under(rec, tree)
        assert set(files) == truth, (backend, sorted(set(files) ^ truth)[:10])
        _no_phantoms(rec)
        seen[backend] = rec.files
    assert seen["ptrace"] == seen["ebpf"]


_STRACE_LINE = re.compile(r'^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\((.*)\)\s+=\s+(-?\d+)(?:<(.*?)>)?')


def _strace_truth(argv: list[str], cwd: Path, env: dict) -> set[str]:
    """Files opened (successfully) and paths renamed/linked/unlinked/made, from strace -f -y."""
    log = cwd.parent / f"strace-{time.monotonic_ns()}.txt"
    subprocess.run(["strace", "-f", "-y", "-qq", "-o", str(log), "-e",
                    "trace=open,openat,openat2,creat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,"
                    "unlink,unlinkat,mkdir,mkdirat,rmdir,execve", *argv], cwd=cwd, env=env, check=True,
                   capture_output=True)
    out: set[str] = set()
    for line in log.read_text().splitlines():
        m = _STRACE_LINE.match(line)
        if not m or int(m[3]) < 0:
            continue
        name, args, fdpath = m[1], m[2], m[4]
        if name in ("open", "openat", "openat2", "creat"):
            if fdpath and fdpath.startswith("/"):
                out.add(fdpath)
            continue
        if name == "execve":
            continue
        # path arguments: "name" after AT_FDCWD / fd</dir> (or alone: relative to cwd, which git keeps)
        for dirfd, path in re.findall(r'(?:(AT_FDCWD|\d+<[^>]*>), )?"([^"]*)"', args):
            base = dirfd[dirfd.index("<") + 1:-1] if "<" in dirfd else str(cwd)
            out.add(os.path.normpath(os.path.join(base, path)))
    return out


def test_git_status_and_commit(tmp_path):
    template, repo = tmp_path / "template", tmp_path / "repo"
    template.mkdir()
    when = "2024-01-02T03:04:05Z"     # the same commit, object names and directories in every run
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when,
           "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*a):
        subprocess.run(["git", *a], cwd=template, env=env, check=True, capture_output=True)

    git("init", "-q")
    for i in range(30):
        (template / "src" / f"m{i % 4}").mkdir(parents=True, exist_ok=True)
        (template / "src" / f"m{i % 4}" / f"f{i}.c").write_text(f"int f{i};\n")
    git("add", "-A")
    git("commit", "-qm", "one")
    past = time.time() - 100          # files older than the index: no "racy" re-reads that depend on timing
    for root, _dirs, files in os.walk(template / "src"):
        for f in files:
            os.utime(os.path.join(root, f), (past, past))
    git("update-index", "-q", "--refresh")

    def norm(paths):   # git's temporary object files have random names
        return {re.sub(r"/tmp_obj_\w+$", "/tmp_obj_*", p) for p in paths}

    for argv, change in ((["git", "status", "--porcelain"], None), (["git", "commit", "-qam", "two"], "src/m1/f5.c")):
        seen = {}
        for backend in BACKENDS + ("strace",):
            shutil.rmtree(repo, ignore_errors=True)
            shutil.copytree(template, repo, symlinks=True)
            if change:
                (repo / change).write_text("int changed;\n")
            if backend == "strace":
                seen[backend] = {p for p in _strace_truth(argv, repo, env) if p.startswith(str(repo))}
                continue
            rec = _learn(backend, argv, repo, tmp_path, env)
            seen[backend] = set(_under(rec, repo))
            _no_phantoms(rec)
        assert norm(seen["ptrace"]) == norm(seen["ebpf"]) == norm(seen["strace"]), \
            (argv, sorted(norm(seen["ptrace"]) ^ norm(seen["strace"]))[:10],
             sorted(norm(seen["ebpf"]) ^ norm(seen["strace"]))[:10])
        if change:
            assert str(repo / ".git" / "index.lock") in seen["ebpf"]


def test_c_program_that_exits_right_after_its_last_open(build_c, tmp_path):
    exe = str(build_c("parity"))
    from .test_backend_parity import _tree as parity_tree
    work = tmp_path / "w"
    w = str(work)
    truth = {f"{w}/d": {"read"}, f"{w}/d/sub/f2": {"read"}, f"{w}/d/f1": {"read"}, f"{w}/d/a": {"read"}}
    seen = {}
    for backend in BACKENDS:
        parity_tree(work)
        rec = _learn(backend, [exe, "exitnow"], work, tmp_path)
        assert _under(rec, work) == truth, backend
        _no_phantoms(rec)
        seen[backend] = rec.files
    assert seen["ptrace"] == seen["ebpf"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_reports_a_new_read_and_a_new_exec_relative_and_absolute(tmp_path, backend):
    (tmp_path / "a").write_text("a\n")
    (tmp_path / "secret").write_text("s\n")
    shutil.copy("/usr/bin/true", tmp_path / "tool")
    base = tmp_path / "base.json"
    lp("learn", "--backend", backend, "-o", str(base), "--", "sh", "-c", "cat a", cwd=tmp_path, check=True)
    same = lp("check", "--baseline", str(base), "--backend", backend, "--", "sh", "-c", "cat a", cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    for script, grown in (("cat secret", str(tmp_path / "secret")), (f"cat {tmp_path}/secret", str(tmp_path / "secret")),
                          ("cat a; ./tool", str(tmp_path / "tool")), ("cat a; /usr/bin/head -c0 a", "/usr/bin/head")):
        proc = lp("check", "--baseline", str(base), "--backend", backend, "--format", "json", "--",
                  "sh", "-c", script, cwd=tmp_path)
        assert proc.returncode == 1, (script, proc.stdout, proc.stderr)
        assert grown in proc.stdout, (script, proc.stdout)


def test_a_path_deeper_than_the_kernel_walk_is_counted_and_reported_never_cut(tmp_path):
    """100 components: walked in several steps (tail calls), recorded by both; 260: left out and noted by eBPF."""
    deep = tmp_path.joinpath(*(["d"] * 260))
    mid = tmp_path.joinpath(*(["m"] * 100))
    for d in (deep, mid):
        d.mkdir(parents=True)
        (d / "f").write_text("deep\n")
    rel = [os.path.relpath(d / "f", tmp_path) for d in (deep, mid)]
    by = {}
    for backend in BACKENDS:
        rec = tmp_path / f"r-{backend}.json"
        proc = lp("learn", "--backend", backend, "-o", str(tmp_path / f"{backend}.json"), "--save-recording",
                  str(rec), "--", "cat", *rel, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        by[backend] = Recording.load(str(rec))
    assert by["ptrace"].files[str(deep / "f")] == {"read"}
    ebpf = by["ebpf"]
    assert {p for p in ebpf.files if p.startswith(str(tmp_path))} == {str(mid / "f")}, "a path cut short was recorded"
    assert ebpf.files[str(mid / "f")] == by["ptrace"].files[str(mid / "f")] == {"read"}
    assert any("deeper than 256 components" in n and "left out" in n for n in ebpf.notes), ebpf.notes
