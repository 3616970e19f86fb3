# sqlite3 (database) on a database file in mktemp -d: a table of the words in $@, then queries
# in a transaction (a rollback journal is created and removed).
set -eu
d=$(mktemp -d)
sqlite3 "$d/words.db" "CREATE TABLE w(id INTEGER PRIMARY KEY, word TEXT, n INTEGER);"
for w in "$@"; do sqlite3 "$d/words.db" "INSERT INTO w(word, n) VALUES ('$w', length('$w'));"; done
sqlite3 "$d/words.db" <<EOF
BEGIN; UPDATE w SET n = n * 10 WHERE n > 4; DELETE FROM w WHERE word LIKE 'x%'; COMMIT;
CREATE INDEX wn ON w(n);
SELECT word, n FROM w ORDER BY word;
SELECT count(*), sum(n) FROM w;
EOF
sqlite3 "$d/words.db" "PRAGMA integrity_check;"
rm -rf "$d"
