"""Package data (the generated tables), read by the package's own loader.

What ``pkgutil.get_data`` does, without importing pkgutil (and the importlib.util and importlib.machinery it
brings: ~0.7 ms of every start on the 2-vCPU machine this was measured on). importlib.resources' file
reader would bring zipfile and pathlib (~5 ms).
"""
from __future__ import annotations

import importlib
import os
import sys


def get_data(package: str, resource: str) -> bytes:
    """The bytes of ``resource`` (a "/"-separated name) beside ``package``'s ``__init__``."""
    mod = sys.modules.get(package) or importlib.import_module(package)
    return mod.__spec__.loader.get_data(os.path.join(os.path.dirname(mod.__file__), *resource.split("/")))
