"""What `learn` writes and says after a run, pinned byte for byte.

tests/data/learn_bytes/ holds the recordings of two real runs of job.sh (`learn --backend ptrace
--save-recording`: a shell script that creates a tree, execs coreutils, tar and python through pyenv's shims,
tries a unix socket), and what learn's post-run path (cli._add_run: the profile's read-modify-write under its
lock, the rules, the atomic save, the report) made of them, run after run, in text and with --json. A change
that makes the post-run path faster must not change one byte of either; a change of what learn learns or says
regenerates them on purpose:

    .venv/bin/python -m tests.test_learn_bytes --regen
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from leastpriv import __version__

DATA = Path(__file__).parent / "data" / "learn_bytes"
RUNS = ("run1", "run2")
VERSION = f"leastpriv {__version__}"


def _post_run(out: Path, as_json: bool) -> dict[str, str]:
    """learn's post-run path for each recording in turn into ``out``: {name: text} of the profile after each
    run and of the report (stdout, stderr), with the temporary directory and the version written as names."""
    from leastpriv import cli
    from leastpriv.learner.profile import Profile
    from leastpriv.tracer.recording import Recording

    got: dict[str, str] = {}
    for name in RUNS:
        rec = Recording.load(str(DATA / f"{name}.recording.json"))
        existing = Profile.load_existing(str(out))
        saved = sys.stdout, sys.stderr
        o, e = io.StringIO(), io.StringIO()
        sys.stdout, sys.stderr = o, e
        try:
            cli._add_run(str(out), existing, rec, None, as_json)
        finally:
            sys.stdout, sys.stderr = saved
        suffix = ".json-report" if as_json else ""
        got[f"{name}.profile.json"] = out.read_text()
        got[f"{name}{suffix}.stdout"] = o.getvalue()
        got[f"{name}{suffix}.stderr"] = e.getvalue()
    return {k: v.replace(str(out), "<OUT>").replace(VERSION, "<VERSION>") for k, v in got.items()}


def _both(tmp: Path) -> dict[str, str]:
    got = _post_run(tmp / "text" / "p.json", as_json=False)
    got.update(_post_run(tmp / "json" / "p.json", as_json=True))
    return got


@pytest.fixture
def made(tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "json").mkdir()
    return _both(tmp_path)


def test_profile_and_report_are_the_pinned_bytes(made):
    assert made["run1.profile.json"].count("\n") > 1000
    for name, text in sorted(made.items()):
        want = (DATA / name).read_text()
        assert text == want, f"{name} differs from tests/data/learn_bytes/{name} (see this module's docstring)"


def test_the_pinned_runs_are_rich(made):
    """The recordings exercise what the post-run path does: created trees (owned patterns), many execs, files
    seen in both runs, a second run that grows the profile by its own created tree."""
    p1 = made["run1.profile.json"]
    for what in ('"owned": [', '"interpreter":', '"realpath":', '"AF_UNIX"', '"/usr/bin/tar"'):
        assert what in p1, what
    assert "2 runs, still growing" in made["run2.stderr"] and "new files: 13" in made["run2.stderr"]


if __name__ == "__main__":   # python -m tests.test_learn_bytes --regen
    import tempfile
    if sys.argv[1:] != ["--regen"]:
        sys.exit("usage: python -m tests.test_learn_bytes --regen")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "text").mkdir()
        (Path(tmp) / "json").mkdir()
        for name, text in _both(Path(tmp)).items():
            (DATA / name).write_text(text)
            print(f"wrote {DATA / name}")
