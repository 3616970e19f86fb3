# python3 running a script: its work directory from tempfile.mkdtemp, JSON and hashes of the words in $@.
exec /usr/bin/python3 -I -B - "$@" <<'EOF'
import hashlib, json, os, shutil, sys, tempfile
from collections import Counter
d = tempfile.mkdtemp()
words = sys.argv[1:]
with open(os.path.join(d, "words.json"), "w") as f:
    json.dump({"words": words}, f)
with open(os.path.join(d, "words.json")) as f:
    back = json.load(f)["words"]
for w in back:
    print(w, hashlib.sha256(w.encode()).hexdigest()[:12])
print(sorted(Counter("".join(back)).most_common(3)))
os.makedirs(os.path.join(d, "sub", "deeper"))
os.replace(os.path.join(d, "words.json"), os.path.join(d, "sub", "deeper", "w.json"))
print(len(os.listdir(os.path.join(d, "sub", "deeper"))))
shutil.rmtree(d)
EOF
