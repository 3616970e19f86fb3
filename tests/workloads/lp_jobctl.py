"""ptrace test workload: a child stops itself (group-stop) and is continued; a caught signal."""
import os
import signal

got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
os.kill(os.getpid(), signal.SIGUSR1)
pid = os.fork()
if pid == 0:
    os.kill(os.getpid(), signal.SIGSTOP)
    print("child resumed", flush=True)
    os._exit(7)
_, st = os.waitpid(pid, os.WUNTRACED)
print("stopped", os.WIFSTOPPED(st), os.WSTOPSIG(st) == signal.SIGSTOP, flush=True)
os.kill(pid, signal.SIGCONT)
_, st = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(st), "usr1", got == [signal.SIGUSR1], flush=True)
