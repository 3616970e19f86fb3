"""What the kernel means: generated tables and the syscall semantics both tracers read."""
