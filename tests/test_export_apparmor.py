"""AppArmor export: every profile we write is accepted by apparmor_parser -Q -K; a broken rule is not."""
from __future__ import annotations

import os
import subprocess

import pytest

from leastpriv.exporters.apparmor import glob_path
from leastpriv.policy.rules import FileRules, Rules

from .conftest import lp, which
from .learning import PYTHON, learn_httpd, learn_profile, with_rules


def _parse(text: str, tmp_path, name="profile") -> subprocess.CompletedProcess:
    f = tmp_path / name
    f.write_text(text)
    return subprocess.run([which("apparmor_parser"), "-Q", "-K", str(f)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def httpd(tmp_path_factory):
    d, _port, _argv, profile = learn_httpd(tmp_path_factory.mktemp("aa"))
    path = d / "httpd.json"
    profile.save(str(path))
    return d, path


def test_httpd_profile_is_accepted(httpd, tmp_path):
    d, path = httpd
    res = lp("export", str(path), "--format", "apparmor", "--name", "web", check=True)
    text = res.stdout
    parsed = _parse(text, tmp_path)
    assert parsed.returncode == 0, parsed.stderr
    assert "include <tunables/global>" in text and "include <abstractions/base>" in text
    assert f"profile web {os.path.realpath(PYTHON)} {{" in text
    assert "  network inet stream,\n" in text
    assert f"  {d}/logs/access.log w,\n" in text
    assert f"  {d}/www/index.html r,\n" in text
    assert "flags=(complain)" not in text
    # a deliberately broken rule is rejected: the check can fail
    broken = text.replace("  include <abstractions/base>", "  include <abstractions/base>\n  /etc/passwd rq,")
    assert _parse(broken, tmp_path, "broken").returncode != 0


def test_complain_mode(httpd, tmp_path):
    _d, path = httpd
    text = lp("export", str(path), "--format", "apparmor", "--complain", check=True).stdout
    assert "flags=(complain)" in text
    assert _parse(text, tmp_path).returncode == 0


def test_execs_capabilities_and_proc_globbing(tmp_path):
    script = tmp_path / "w.sh"
    script.write_text("#!/bin/sh\nuname -s >/dev/null; cat /proc/self/status >/dev/null; ls /usr/share/zoneinfo >/dev/null\n")
    script.chmod(0o755)
    profile, _ = learn_profile([str(script)])
    path = tmp_path / "p.json"
    with_rules(profile, capabilities=["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]).save(str(path))
    text = lp("export", str(path), "--format", "apparmor", check=True).stdout
    assert _parse(text, tmp_path).returncode == 0, text
    assert "  capability chown,\n  capability net_bind_service,\n" in text
    assert "/usr/bin/uname rix," in text
    assert "@{PROC}/@{pid}/status r," in text
    assert "/usr/bin/dash rmix," in text or "/usr/bin/sh rmix," in text   # the #! interpreter


@pytest.mark.parametrize("path,expected", [
    ("/proc/1234/status", "@{PROC}/@{pid}/status"),
    ("/proc/self/maps", "@{PROC}/@{pid}/maps"),
    ("/proc/filesystems", "@{PROC}/filesystems"),
    ("/dev/pts/3", "/dev/pts/[0-9]*"),
    ("/home/alice/.config/app.toml", "@{HOME}/.config/app.toml"),
    ("/root/.cache/x", "@{HOME}/.cache/x"),
    ("/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0.11.2", "/usr/lib/x86_64-linux-gnu/libpcre2-8.so*"),
    ("/srv/data[1]/a b", "/srv/data\\[1\\]/a b"),
])
def test_globbing(path, expected):
    assert glob_path(path) == expected


def test_path_with_spaces_is_quoted_and_parses(tmp_path):
    from leastpriv.exporters.apparmor import render
    from leastpriv.learner.profile import Profile

    p = Profile(runs=({"command": ["/usr/bin/true"], "uid": 0},),
                rules=Rules(files=FileRules(read=("/srv/my data/a.txt", "/srv/x{y}.txt"))))
    text = render(p, "spaces")
    assert '"/srv/my data/a.txt" r,' in text
    assert _parse(text, tmp_path).returncode == 0, text


def test_socket_families_and_types_parse(tmp_path):
    from leastpriv.kernel import constants
    from leastpriv.exporters.apparmor import network_rules, render
    from leastpriv.learner.profile import Profile, empty_facts

    fam, typ = constants.group("socket_family"), constants.group("socket_type")
    facts = empty_facts()
    facts["args"] = {"x86_64": {"socket": [
        {"values": [fam["AF_NETLINK"], typ["SOCK_RAW"] | 0x80000, 0]},
        {"values": [fam["AF_INET6"], typ["SOCK_DGRAM"], 17]},
        {"values": [fam["AF_PACKET"], typ["SOCK_RAW"], 768]},
        {"values": [fam["AF_UNSPEC"], typ["SOCK_STREAM"], 0]}]}}
    assert network_rules(facts) == ["inet6 dgram", "netlink raw", "packet raw"]
    p = Profile(runs=({"command": ["/usr/bin/true"], "uid": 0},), facts=facts,
                rules=Rules(capabilities=("CAP_NET_RAW",)))
    text = render(p, "net")
    assert "  network netlink raw,\n" in text and "  capability net_raw,\n" in text
    assert _parse(text, tmp_path).returncode == 0, text
