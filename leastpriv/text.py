"""Words for counts, in one place: "1 call", "2 calls", "1 socket family", "3 socket families"."""
from __future__ import annotations


def plural(n: int, one: str, many: str | None = None) -> str:
    """``n`` and the word in the number it needs (``many`` defaults to ``one`` + "s")."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
