"""verify's verdict: the denials named, the messages, and the one-line outcome (status on stderr)."""
from __future__ import annotations

import json

from . import console


def render_verify(res, as_json: bool = False) -> int:
    """Say what verify found; the exit code (0 verified, 1 denied or failed)."""
    if as_json:
        console.out.print_json(json.dumps(res.to_json()))
    for d in res.denials:
        if d.name.startswith("CAP_"):
            console.err.print(f"[red]denied[/] {d.name} to the {d.by}: {d.why}", highlight=False)
        else:
            console.err.print(f"[red]denied[/] {d.name} ({d.arch}) by the {d.by}: {d.why}, {d.count} call"
                              f"{'s' * (d.count != 1)}", highlight=False)
    for m in res.messages:
        console.warn(m)
    if res.ok:
        e = res.enforce
        console.info(f"verified under runc with runtime base {res.runtime!r}: the container ran with the profile's "
                     f"seccomp filter and capabilities [{', '.join(res.capabilities) or 'none'}] and exited "
                     f"{e.exit_status if e else '?'}")
        return 0
    console.err.print("[red]leastpriv: verify: FAILED[/]")
    return 1
