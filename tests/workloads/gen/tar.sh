# tar with gzip (archiving and compression): files named in $@ in mktemp -d, archived, tested,
# listed, extracted elsewhere and compared.
set -eu
d=$(mktemp -d)
mkdir -p "$d/src/sub" "$d/out"
for f in "$@"; do seq 1 200 | sed "s/^/$f /" > "$d/src/$f.txt"; cp "$d/src/$f.txt" "$d/src/sub/$f.copy"; done
tar -czf "$d/a.tar.gz" -C "$d" src
gzip -t "$d/a.tar.gz" && echo "gzip ok"
tar -tzf "$d/a.tar.gz" | sort
tar -xzf "$d/a.tar.gz" -C "$d/out"
diff -r "$d/src" "$d/out/src" && echo "same"
gzip -c "$d/src/$1.txt" | gzip -dc | wc -l
rm -rf "$d"
