"""What a `learn --backend ptrace` into a new profile loads: only what that path runs (each module costs
start-up time on every learn; README "CPU placement" has the figures). A module listed here that comes
back on the learn path is a regression of the fixed cost."""
from __future__ import annotations

import subprocess
import sys

NOT_ON_THE_LEARN_PATH = [
    "ptrace",                      # python-ptrace: ptrace_abi binds libc's ptrace itself (~11 ms)
    "logging", "traceback", "textwrap",   # what python-ptrace's package brought
    "pkgutil", "importlib.util",   # package data through the package's loader (kernel/data.py)
    "tempfile", "pathlib", "shutil", "zipfile",
    "getpass", "termios",          # the user name of a run: recording._user
    "difflib",                     # suggestions for an unknown option, only on that error (cli.py)
    "platform",                    # the host's architecture from os.uname (kernel/syscalls.py)
    "dataclasses", "inspect",      # @value classes are made without them (values.py: ~12 ms of every learn)
    "threading",                   # no thread on this path (__main__ counts threads only if it was imported)
    "copy", "weakref",             # fileio.copy_json's rare fallback imports copy itself
    "typing",                      # annotations only (TYPE_CHECKING = False; ABCs from collections.abc): ~1.5 ms
    "orjson", "uuid", "datetime",  # a small profile is written by json.dumps (fileio.dumps)
    "rich",                        # status lines on a stderr that is not a terminal are written plainly
    "fastjsonschema", "leastpriv.schemas._validate_profile",   # a new profile: nothing to read and check
    "leastpriv.exporters", "leastpriv.enforce", "leastpriv.reach", "leastpriv.oci",
    "leastpriv.tracer.ebpf", "leastpriv.tracer.kernlog", "leastpriv.tracer.container",
    "leastpriv.learner.check", "leastpriv.learner.diff", "leastpriv.learner.review",
]


def test_a_learn_into_a_new_profile_loads_only_its_own_path(tmp_path):
    code = ("import sys\nfrom leastpriv.cli import main\n"
            "try:\n    main(['learn', '--backend', 'ptrace', '-o', %r, '--', 'true'])\nexcept SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
            "print('\\n'.join(sorted(sys.modules)))") % str(tmp_path / "p.json")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert "leastpriv.tracer.ptrace" in loaded and "leastpriv.learner.aggregate" in loaded   # the test can see
    found = sorted(m for m in loaded for unwanted in NOT_ON_THE_LEARN_PATH
                   if m == unwanted or m.startswith(unwanted + "."))
    assert not found, f"on the learn path: {found}"


def test_a_learn_into_an_existing_profile_checks_it_without_fastjsonschema(tmp_path):
    """The profile read back is checked by the generated validator (schemas/_validate_profile.py), which
    needs neither fastjsonschema nor decimal while the file is valid (~5 ms of every command reading one)."""
    prof = str(tmp_path / "p.json")
    code = ("import sys\nfrom leastpriv.cli import main\n"
            "try:\n    main(['learn', '--backend', 'ptrace', '-o', %r, '--', 'true'])\nexcept SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
            "print('\\n'.join(sorted(sys.modules)))") % prof
    for _ in range(2):   # the second learn reads and checks the first one's profile
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert "leastpriv.schemas._validate_profile" in loaded   # the test can see
    assert not loaded & {"fastjsonschema", "decimal", "urllib", "typing"}, sorted(loaded & {"fastjsonschema", "decimal"})


def _collector_at_exit(tmp_path, *argv) -> str:
    code = ("import atexit, gc, sys\nfrom leastpriv.__main__ import run\n"
            "atexit.register(lambda: print('collector', gc.isenabled()))\n"
            f"sys.argv = ['leastpriv', *{list(argv)!r}]\nrun()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()[-1]


def test_the_cycle_collector_is_off_for_a_ptrace_learn_only(tmp_path):
    """Start-up runs without the cycle collector (__main__.run); a learn with the ptrace backend goes on
    without it, every other command turns it back on before its own work."""
    assert _collector_at_exit(tmp_path, "learn", "--backend", "ptrace", "-o", "p.json", "--", "true") == "False"
    assert _collector_at_exit(tmp_path, "show", "p.json") == "True"
    assert _collector_at_exit(tmp_path, "export", "p.json", "--format", "docker", "-o", "d.json") == "True"


CTRL_C_IN_START_UP = r"""
import sys
class CtrlC:   # the SIGINT of a Ctrl-C pressed while leastpriv's modules load, at a fixed point
    def find_spec(self, name, path=None, target=None):
        if name == "leastpriv.cli":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
sys.argv = ["leastpriv", "learn", "--", "true"]
from leastpriv.__main__ import run
run()
"""


def test_ctrl_c_while_the_modules_load_exits_130_without_a_traceback():
    """Ctrl-C in the ~30 ms that leastpriv's imports take (before cli.main can catch it) said nothing useful
    in a 30-line KeyboardInterrupt traceback and exited -2; now 130 and nothing on stderr, like after it."""
    r = subprocess.run([sys.executable, "-c", CTRL_C_IN_START_UP], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr, r.stdout) == (130, "", "")
