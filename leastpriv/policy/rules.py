"""The settings a profile's rules were derived with, and their defaults, stated once.

``Profile.rules`` is the learner's JSON-shaped output (learner/rules.py); these three settings are read by
the seccomp model, the exporters, the enforcer and the reviews. Read them through :func:`settings`, never
with a default of your own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

STYLES = ("allowlist", "denylist")
ARGS_MODES = ("strict", "safe", "off")


@dataclass(frozen=True)
class Settings:
    style: str = "allowlist"          # allowlist: deny all but what was used; denylist: allow all but the dangerous
    args_mode: str = "safe"           # argument rules: strict, safe, off
    no_new_privileges: bool = True    # false when the workload changes ids or capabilities (setuid, file caps)

    def rule_options(self) -> dict:
        """The options learner/rules.py derives rules with."""
        return {"args": self.args_mode, "style": self.style}


DEFAULT = Settings()


def settings(profile_or_rules: Any) -> Settings:
    """The settings of a Profile (or of its ``rules`` mapping); defaults for what it does not say."""
    rules = getattr(profile_or_rules, "rules", profile_or_rules)
    if not isinstance(rules, Mapping):
        return DEFAULT
    style = rules.get("style", DEFAULT.style)
    args_mode = rules.get("args_mode", DEFAULT.args_mode)
    nnp = rules.get("no_new_privileges", DEFAULT.no_new_privileges)
    return Settings(style=style if isinstance(style, str) else DEFAULT.style,
                    args_mode=args_mode if isinstance(args_mode, str) else DEFAULT.args_mode,
                    no_new_privileges=bool(nnp))
