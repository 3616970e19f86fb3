"""tracer/pathfacts.describe: the facts of a run's paths, read once per path (an lstat each, realpaths
built from the parent's) and equal to the plain stat/islink/realpath answers it replaced."""
from __future__ import annotations

import os
from pathlib import Path

from leastpriv.tracer import pathfacts


def reference(files, executables) -> dict:
    """describe() as it was written first: kind_of, os.path.islink and os.path.realpath for every path."""
    out: dict[str, dict] = {}

    def add(p: str) -> None:
        if p in out or len(out) >= pathfacts.MAX_PATHS or not p.startswith("/"):
            return
        e = out[p] = {"kind": pathfacts.kind_of(p)}
        if os.path.islink(p):
            e["link"] = "yes"
        rp = os.path.realpath(p)
        if rp != p:
            e["realpath"] = rp
            add(rp)
        parent = os.path.dirname(p)
        if parent != p:
            add(parent)

    for p in files:
        add(p)
    for p in executables:
        add(p)
        if p not in out:
            continue
        out[p]["realpath"] = os.path.realpath(p)
        interp = pathfacts.interpreter(p)
        if interp:
            out[p]["interpreter"] = interp
            add(interp)
            if interp in out:
                out[interp]["realpath"] = os.path.realpath(interp)
    return dict(sorted(out.items()))


def _tree(t: Path) -> tuple[list[str], list[str]]:
    (t / "d" / "sub" / "deep").mkdir(parents=True)
    (t / "d" / "f").write_text("f\n")
    (t / "d" / "sub" / "deep" / "g").write_text("g\n")
    (t / "rel").symlink_to("d/sub")                      # relative link to a directory
    (t / "abs").symlink_to(t / "d")                      # absolute link
    (t / "chain").symlink_to("rel/deep")                 # a link through a link
    (t / "dangling").symlink_to("nowhere/x")
    (t / "loop1").symlink_to("loop2")
    (t / "loop2").symlink_to("loop1")
    (t / "self").symlink_to("self")
    (t / "up").symlink_to("d/sub/../..")                 # .. inside a target
    (t / "d" / "sub" / "back").symlink_to("../f")
    (t / "fifo").mkdir()
    os.mkfifo(t / "fifo" / "p")
    (t / "script").write_text("#!/bin/sh\necho hi\n")
    (t / "script").chmod(0o755)
    s = str(t)
    files = [f"{s}/d/f", f"{s}/rel/deep/g", f"{s}/abs/sub/deep/g", f"{s}/chain/g", f"{s}/chain/missing/x",
             f"{s}/dangling", f"{s}/dangling/y", f"{s}/loop1", f"{s}/loop1/z", f"{s}/self/a/b", f"{s}/up/d/f",
             f"{s}/d/sub/back", f"{s}/d/f/notadir", f"{s}/fifo/p", f"{s}/missing/a/b/c", "/dev/null",
             f"{s}/d//f", f"{s}/d/./f", f"{s}/d/sub/../f", f"{s}/rel/", "relative/path", "/",
             # names os.path.normpath keeps or changes, next to ones that only look like them
             f"{s}/d/.", f"{s}/d/..", f"{s}/d/...", f"{s}/d/.f", f"{s}/d/..f", f"{s}/d/f.", f"{s}//d", f"{s}///d/f",
             f"{s}/./d", f"{s}/../x", "//", "///", "/.", "/..", "/...", f"{s}/rel/./deep/"]
    executables = [f"{s}/script", "/bin/sh", f"{s}/chain/../d/f", f"{s}/missing/exe"]
    return files, executables


def test_describe_equals_the_plain_lookups(tmp_path):
    files, executables = _tree(tmp_path)
    assert pathfacts.describe(files, executables) == reference(files, executables)


def test_describe_on_system_paths_equals_the_plain_lookups():
    """The host's own layout (merged /usr: /lib -> usr/lib, /bin -> usr/bin; alternatives links)."""
    files = []
    for top in ("/etc", "/usr/lib/x86_64-linux-gnu", "/lib", "/bin", "/usr/share/zoneinfo"):
        if os.path.isdir(top):
            for i, name in enumerate(sorted(os.listdir(top))):
                if i > 300:
                    break
                files.append(os.path.join(top, name))
                files.append(os.path.join(top, name, "x"))
    executables = ["/bin/sh", "/usr/bin/python3", "/usr/bin/env"]
    assert pathfacts.describe(files, executables) == reference(files, executables)
