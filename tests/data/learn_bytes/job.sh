#!/bin/sh
# a small real workload: reads, creates a tree, execs, a python import, a unix socket attempt
set -e
D=$1
mkdir -p "$D/out/sub/deeper"
for i in 1 2 3 4 5; do echo "$i" > "$D/out/sub/part$i.txt"; done
echo x > "$D/out/sub/deeper/leaf"
cat /etc/passwd /etc/hostname > /dev/null
ls -l /usr/include/linux > "$D/out/listing"
sort "$D/out/listing" | head -3 > /dev/null
python3 -c 'import json, socket, os; s=socket.socket(socket.AF_UNIX); 
try: s.connect("/nonexistent.sock")
except OSError: pass
print(len(json.dumps(sorted(os.listdir("/usr/include/linux")))))' > "$D/out/n"
tar -cf "$D/out.tar" -C "$D" out
rm -rf "$D/out"
