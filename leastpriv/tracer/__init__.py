"""How facts are observed: tracer backends that produce a Recording.

Every backend implements :class:`leastpriv.tracer.base.Backend`; the CLI
picks one by name (``auto``, ``ptrace``, ``ebpf``).
"""
