# leastpriv: `make install` then `make test` (README.md).
# The venv's interpreter: Debian's /usr/bin/python3 when it is 3.11+ and can make a venv (python3-venv, which
# `make system` installs; PY is looked up when the venv recipe runs). Debian builds it with PGO and LTO: a short
# `learn` takes ~3-6 ms less than on an unoptimized build such as pyenv's. Else python3 from PATH;
# `make install PY=/path/to/python3` chooses another.
PY ?= $(shell /usr/bin/python3 -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        && echo /usr/bin/python3 || echo python3)
VENV := .venv
VPY := $(VENV)/bin/python

.PHONY: install system venv test bench bench-reach eval tables clean

install: system venv

system:
	bash tools/setup-system.sh

venv:
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	@# editable_mode=compat: the checkout goes on sys.path by a plain .pth line; the default mode's import
	@# hook (__editable___*_finder, with pathlib and re) would cost every leastpriv start ~5-10 ms;
	@# setuptools calls compat transitional: where it is gone, the default mode
	$(VPY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat 2>/dev/null \
	  || $(VPY) -m pip install -q -e '.[test]'
	@# the venv's own setuptools (ensurepip's) builds nothing (pip builds in an isolated environment, with
	@# setuptools>=77 from pyproject.toml); its distutils-precedence.pth ran at every leastpriv start (~0.5 ms)
	$(VPY) -m pip uninstall -q -y setuptools 2>/dev/null || true
	@# bcc is Debian's pure-Python package over libbcc.so: make it importable from the venv
	@site=$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	if [ -d /usr/lib/python3/dist-packages/bcc ]; then ln -sfn /usr/lib/python3/dist-packages/bcc "$$site/bcc"; fi
	@# bytecode for every module now, with the interpreter that will run them: where PYTHONDONTWRITEBYTECODE is
	@# set, or the checkout is read-only later, each start would otherwise compile ~45 modules (~0.1 s)
	$(VPY) -m compileall -q -j 0 leastpriv >/dev/null
	@echo "installed: $(VENV)/bin/leastpriv"

test:
	@# the ptrace loop's C extension older than its source (a pull or rebase changed _ptloop.c): rebuild it first,
	@# or the tests meet a module that speaks another PROTOCOL (ptrace.py then runs the Python loop)
	@so=$$(ls leastpriv/tracer/_ptloop.*.so 2>/dev/null | head -1); \
	if [ -n "$$so" ] && [ leastpriv/tracer/_ptloop.c -nt "$$so" ]; then $(MAKE) venv; fi
	$(VPY) -m pytest -ra -q tests

bench:
	$(VPY) bench/run.py
	$(VPY) bench/reach.py

# static reachability: cold/cached analysis time and peak memory per program (bench/reach.py)
bench-reach:
	$(VPY) bench/reach.py

# how minimal the exported allowlists are, per real program, next to Docker's default (not a test)
eval:
	$(VPY) bench/eval_minimality.py

# regenerate committed data tables from their sources
tables:
	$(PY) tools/gen_syscalls.py
	$(PY) tools/gen_constants.py
	$(PY) tools/gen_syscall_groups.py
	$(PY) tools/gen_docker_default.py
	$(PY) tools/gen_ebpf_semantics.py
	$(PY) tools/gen_value_inits.py
	$(VPY) tools/gen_validators.py   # needs fastjsonschema (the venv)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache leastpriv/tracer/_ptloop.*.so
