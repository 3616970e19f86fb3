"""The one C part of leastpriv: the ptrace backend's hot loop (leastpriv/tracer/_ptloop.c), everything else
is in pyproject.toml. optional=True: without a C compiler or Python's headers the install still succeeds and
the pure-Python loop runs (tests/test_ptloop.py fails under CI=true if the module was not built)."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("leastpriv.tracer._ptloop", ["leastpriv/tracer/_ptloop.c"], optional=True)])
