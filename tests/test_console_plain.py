"""ui/console: status lines on a stderr that is not a terminal are written without rich (which costs
~30 ms to import on every learn), byte for byte what rich writes there."""
from __future__ import annotations

import io
import subprocess
import sys

import pytest
from rich.console import Console
from rich.markup import escape

from leastpriv.ui import console

MESSAGES = [
    "run 18d6e0095fd1 (ptrace, complete): 17 distinct syscalls -> /tmp/p.json (1 run)",
    "new files: 3", "[red]not markup[/] [bold] \\[x]", "a path /etc/[a-z]*/x", "x" * 500,
    "unicode: é ü 漢字 🙂", "trailing space ", "", "  leading", "colons a:b c:d: e",
    ":smile: is an emoji code", "/srv/a:smile:b", "tab\there", "new\nline", "cr\rreturn", "bell\a",
    "surrogate \udcff byte", "zero\u200dwidth", "C:\\path\\x", "100% [dim]", "-> ~ $HOME `x`",
]


def _rich(markup: str) -> str:
    buf = io.StringIO()
    Console(file=buf, highlight=False, soft_wrap=True).print(markup)
    return buf.getvalue()


@pytest.mark.parametrize("msg", MESSAGES)
@pytest.mark.parametrize("func,prefix", [(console.info, "[dim]leastpriv:[/]"),
                                         (console.warn, "[yellow]leastpriv: warning:[/]"),
                                         (console.error, "[red]leastpriv: error:[/]")])
def test_plain_status_is_what_rich_writes(monkeypatch, msg, func, prefix):
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "COLUMNS"):
        monkeypatch.delenv(var, raising=False)
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    func(msg)
    assert buf.getvalue() == _rich(f"{prefix} {escape(msg)}")


def test_a_learn_with_stderr_in_a_file_does_not_import_rich(tmp_path):
    code = ("import sys\nfrom leastpriv.cli import main\n"
            "try:\n    main(['learn', '--backend', 'ptrace', '-o', %r, '--', 'true'])\nexcept SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))") % str(tmp_path / "p.json")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
    assert "leastpriv: run " in proc.stderr
