"""Small phrases the reports share (learn, show, review); no rich here, so that a learn whose status goes
to a file or a pipe never imports it."""
from __future__ import annotations


def convergence(nruns: int, stable: int) -> tuple[str, str]:
    """How many runs and whether the profile stopped growing, in words (show, review, learn), and a style."""
    runs = f"{nruns} run{'s' * (nruns != 1)}"
    if nruns < 2:
        return f"{runs}: one run is a sample, not a proof: learn again with other inputs", "yellow"
    if stable >= 2:
        return f"{runs}, stopped growing ({stable} runs in a row added nothing)", "green"
    if stable == 1:
        return f"{runs}, the last run added nothing", "green"
    return f"{runs}, still growing (the last run added facts): learn again with other inputs", "yellow"


def capability_label(row: dict) -> str:
    """A capability for a list: its name, marked when it was inferred from syscalls, not seen as a kernel check."""
    return row["cap"] + (" (inferred)" if row.get("inferred") else "")
