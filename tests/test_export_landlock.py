"""Landlock export: the landlockconfig JSON, and the same ruleset `leastpriv run` enforces."""
from __future__ import annotations

import json
import os

import pytest

from leastpriv.policy.landlock import FS_RIGHTS, NET_RIGHTS, SCOPES, ruleset

from .conftest import lp
from .learning import PYTHON, learn_httpd

KEYS = {"abi", "ruleset", "pathBeneath", "netPort"}


def check_landlockconfig(doc: dict) -> None:
    """The shape landlockconfig's schema requires (landlock-lsm/landlockconfig schema/landlockconfig.json)."""
    assert set(doc) <= KEYS | {"variable"} and isinstance(doc["abi"], int) and doc["abi"] >= 1
    for rs in doc["ruleset"]:
        assert rs and set(rs) <= {"handledAccessFs", "handledAccessNet", "scoped"}
        assert set(rs.get("handledAccessFs", [])) <= set(FS_RIGHTS)
        assert set(rs.get("handledAccessNet", [])) <= set(NET_RIGHTS)
        assert set(rs.get("scoped", [])) <= set(SCOPES)
    for pb in doc.get("pathBeneath", []):
        assert set(pb) == {"allowedAccess", "parent"} and pb["allowedAccess"] and pb["parent"]
        assert set(pb["allowedAccess"]) <= set(FS_RIGHTS)
    for np_ in doc.get("netPort", []):
        assert set(np_) == {"allowedAccess", "port"} and set(np_["allowedAccess"]) <= set(NET_RIGHTS)
        assert all(isinstance(p, int) and 0 <= p < 65536 for p in np_["port"])


@pytest.fixture(scope="module")
def httpd(tmp_path_factory):
    d, port, _argv, profile = learn_httpd(tmp_path_factory.mktemp("ll"))
    path = d / "httpd.json"
    profile.save(str(path))
    return d, port, path, profile


def test_httpd_ruleset(httpd):
    d, port, path, profile = httpd
    doc = json.loads(lp("export", str(path), "--format", "landlock", check=True).stdout)
    check_landlockconfig(doc)
    assert doc["abi"] == 7
    assert doc["ruleset"][0]["handledAccessNet"] == ["bind_tcp", "connect_tcp"]
    assert {"allowedAccess": ["bind_tcp"], "port": [port]} in doc["netPort"]
    by_path = {p: set(pb["allowedAccess"]) for pb in doc["pathBeneath"] for p in pb["parent"]}
    assert {"make_reg", "write_file"} <= by_path[str(d / "logs")]          # the log is created there
    assert by_path[str(d / "www" / "index.html")] == {"read_file"}
    assert {"execute", "read_file"} <= by_path[os.path.realpath(PYTHON)]
    assert {"execute", "read_file"} <= by_path["/lib64/ld-linux-x86-64.so.2"]  # the ELF interpreter
    assert "/etc" not in by_path                                              # never globbed


def test_older_abi_drops_what_it_cannot_enforce(httpd):
    *_, profile = httpd
    rs = ruleset(profile, 3)
    assert rs.abi == 3 and not rs.handled_net and "ioctl_dev" not in rs.handled_fs and "truncate" in rs.handled_fs
    assert any("cannot restrict TCP" in n for n in rs.notes)


def test_same_ruleset_as_run_enforces(httpd):
    from leastpriv.enforce.landlock import kernel_abi, plan

    *_, profile = httpd
    p = plan(profile)
    assert p.abi == kernel_abi() == 7
    assert p.rules == ruleset(profile, 7)
