"""The package layout holds: dependencies follow the data (import-linter contracts in pyproject.toml), and no
module imports one of ours inside a function to dodge a cycle."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

# Imports that are deliberately lazy, each with its reason. Never to dodge a cycle: lint-imports sees
# function-level imports too, so a cycle between layers fails test_import_contracts_hold wherever it is.
LAZY_FILES = {
    "leastpriv/cli.py": "each command loads only what it uses (startup: without .pyc files every import compiles)",
    "leastpriv/app.py": "the container use cases load runc, images and seccomp-notify only when asked for",
}
LAZY = {
    ("leastpriv/__main__.py", ".cli"): "imported once the cycle collector is off for the start-up",
    ("leastpriv/tracer/select.py", ".ptrace"): "the ptrace backend is imported only when chosen",
    ("leastpriv/tracer/select.py", ".ebpf"): "bcc (and its LLVM) is loaded only when eBPF is chosen",
    ("leastpriv/tracer/ptrace.py", "."): "the fast gate (tracer/fastpath.py) only with a baseline",
    ("leastpriv/learner/profile.py", "..tracer"): "the seccomp log reader (kernlog) only where a log may be read: "
                                                  "learn, which writes a profile, never loads it",
    ("leastpriv/enforce/capwatch.py", "..tracer.ebpf"): "the eBPF tracer's classifier only when capabilities are watched",
    ("leastpriv/learner/review.py", "..reach.coverage"): "reach (pyelftools, capstone) only when coverage is shown",
    ("leastpriv/ui/review.py", ".reach"): "reach only when coverage is shown",
    ("leastpriv/ui/show.py", "..reach.coverage"): "reach only when coverage is shown",
    ("leastpriv/ui/show.py", ".reach"): "reach only when coverage is shown",
    **{("leastpriv/app.py", m): "the container machinery (runc, images, seccomp-notify) only for container commands"
       for m in (".oci.runc", ".oci.workspace", ".oci.image", ".tracer.container", ".enforce.verify",
                 ".learner.image_review", ".learner.review")},
}


def test_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    res = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_no_imports_of_ours_inside_functions_but_the_listed_lazy_ones():
    found = []
    for f in sorted((ROOT / "leastpriv").rglob("*.py")):
        rel = str(f.relative_to(ROOT))
        if rel in LAZY_FILES:
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and (sub.level or (sub.module or "").startswith("leastpriv")):
                    mod = "." * sub.level + (sub.module or "")
                    if (rel, mod) not in LAZY:
                        found.append(f"{rel}:{sub.lineno}: from {mod} import ...")
    assert not found, "imports inside functions (hoist them, or fix the cycle they dodge):\n" + "\n".join(found)


@pytest.mark.parametrize("where", ["module", "function"])
def test_a_broken_contract_is_caught(tmp_path, where):
    """The check can fail: a copy of the package where an exporter imports the enforcer is reported, also
    when the import sits inside a function (so no lazy import of cli.py or app.py can hide a cycle)."""
    shutil.copytree(ROOT / "leastpriv", tmp_path / "leastpriv", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "leastpriv" / "exporters" / "docker.py", "a") as fh:
        if where == "module":
            fh.write("\nfrom ..enforce import run as _run  # noqa\n")
        else:
            fh.write("\n\ndef _lazy():\n    from ..enforce import run as _run  # noqa\n    return _run\n")
    lint = Path(sys.executable).parent / "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    res = subprocess.run([str(lint)], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode != 0, res.stdout[-2000:]
    assert "leastpriv.exporters.docker -> leastpriv.enforce.run" in res.stdout
