"""ptrace test workload: a Python program that starts threads and subprocesses."""
import os
import subprocess
import sys
import threading

out_dir = sys.argv[1]
done = []


def work(i):
    with open(os.path.join(out_dir, f"thread{i}.txt"), "w") as f:
        f.write(str(i))
    done.append(i)


threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sub = subprocess.run(["sh", "-c", "echo sub $0; cat /etc/hostname > /dev/null", "x"], capture_output=True, text=True)
print("threads", sorted(done), sub.stdout.strip(), sub.returncode, flush=True)
