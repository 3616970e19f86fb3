"""Machine formats of a ``check`` result: json, junit, sarif, github. One function per format.

Each takes the dict from ``learner.check.check`` plus the baseline's path and
returns the text to print on stdout.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from .. import __version__
from ..learner.diff import KIND_NAMES, KIND_TITLES, KINDS

FORMATS = ("rich", "json", "junit", "sarif", "github")

_RULE_IDS = {k: f"LP{i + 1:03d}" for i, k in enumerate(KINDS)}
_RULE_NAMES = {"syscall": "NewSyscall", "arg": "NewArgumentValue", "capability": "NewCapability",
               "file": "NewPath", "exec": "NewExecutable", "network": "NewNetworkEndpoint",
               "family": "NewSocketFamily", "unknown_syscall": "UnknownSyscall"}


def _message(c: dict) -> str:
    where = f" ({c['arch']})" if c.get("arch") else ""
    text = f"new {KIND_NAMES[c['kind']]}{where}: {c['label']}"
    if c.get("danger"):
        d = c["danger"]
        text += f" -- DANGEROUS: {d['why']} (e.g. {d['example']})"
    return text


def to_json(result: dict, baseline: str) -> str:
    return json.dumps({"baseline": baseline, **result}, indent=2, sort_keys=True)


def to_junit(result: dict, baseline: str) -> str:
    """One testcase per kind of fact; a failure lists what grew. Readable by CI test tabs."""
    suites = ET.Element("testsuites", name="leastpriv check")
    kinds = result["kinds"]
    failures = sum(1 for k in kinds if any(c["kind"] == k for c in result["added"]))
    suite = ET.SubElement(suites, "testsuite", name=f"leastpriv check against {baseline}", tests=str(len(kinds)),
                          failures=str(failures), errors="0", skipped="0")
    suites.set("tests", str(len(kinds)))
    suites.set("failures", str(failures))
    for k in kinds:
        grown = [c for c in result["added"] if c["kind"] == k]
        case = ET.SubElement(suite, "testcase", classname="leastpriv.check", name=f"no new {KIND_TITLES[k]}")
        if grown:
            dangerous = [c for c in grown if c.get("danger")]
            msg = f"{len(grown)} new {KIND_NAMES[k] if len(grown) == 1 else KIND_TITLES[k]}" + \
                (f", {len(dangerous)} dangerous" if dangerous else "")
            fail = ET.SubElement(case, "failure", message=msg, type="dangerous-growth" if dangerous else "growth")
            fail.text = "\n".join(_message(c) for c in grown)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def to_sarif(result: dict, baseline: str) -> str:
    """SARIF 2.1.0: one rule per kind of fact; dangerous growth is an error, other growth a warning."""
    rules = [{"id": _RULE_IDS[k], "name": _RULE_NAMES[k],
              "shortDescription": {"text": f"The workload uses {KIND_TITLES[k]} its baseline profile does not have"},
              "fullDescription": {"text": "leastpriv check compares what the workload did with the committed "
                                          "baseline profile; growth means the profile (and any policy exported "
                                          "from it) would deny the new behaviour."},
              "defaultConfiguration": {"level": "warning"}} for k in KINDS]
    results = []
    for c in result["added"]:
        results.append({
            "ruleId": _RULE_IDS[c["kind"]],
            "ruleIndex": KINDS.index(c["kind"]),
            "level": "error" if c.get("danger") else "warning",
            "message": {"text": _message(c)},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": baseline}}}],
            "properties": {"kind": c["kind"], "arch": c.get("arch", ""), "item": c["item"],
                           "dangerous": bool(c.get("danger"))},
        })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "leastpriv", "version": __version__, "semanticVersion": __version__,
                                "rules": rules}},
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


def _gh_escape(s: str, prop: bool = False) -> str:
    s = s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        s = s.replace(":", "%3A").replace(",", "%2C")
    return s


def to_github(result: dict, baseline: str) -> str:
    """GitHub Actions workflow commands: one annotation per growth, on the baseline file."""
    lines = []
    for c in result["added"]:
        level = "error" if c.get("danger") else "warning"
        title = "leastpriv: dangerous growth" if c.get("danger") else "leastpriv: usage grew"
        lines.append(f"::{level} file={_gh_escape(baseline, True)},title={_gh_escape(title, True)}::"
                     f"{_gh_escape(_message(c))}")
    if not result["added"]:
        lines.append(f"::notice file={_gh_escape(baseline, True)},title=leastpriv::nothing grew beyond the baseline")
    return "\n".join(lines) + "\n"


RENDER = {"json": to_json, "junit": to_junit, "sarif": to_sarif, "github": to_github}
