# redis-server (key-value server) with its data directory in mktemp -d; $@: key=value pairs to SET,
# then GET each, INCR a counter per key, SAVE (an RDB written to temp-<pid>.rdb and renamed), shutdown.
set -eu
PORT=${LP_GEN_PORT:-16479}   # the suite passes a free port (tests/test_generalize_suite.py)
d=$(mktemp -d)
redis-server --port $PORT --bind 127.0.0.1 --dir "$d" --dbfilename dump.rdb --save "" --appendonly no \
    --logfile "$d/redis.log" --daemonize no &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
sleep 0.05   # always (see nginx.sh)
i=0; until redis-cli -p $PORT PING >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 400 ] || exit 9; sleep 0.05; done
for kv in "$@"; do
    redis-cli -p $PORT SET "${kv%%=*}" "${kv#*=}" >/dev/null
    redis-cli -p $PORT INCR counter >/dev/null
done
for kv in "$@"; do redis-cli -p $PORT GET "${kv%%=*}"; done
redis-cli -p $PORT GET counter
redis-cli -p $PORT SAVE
redis-cli -p $PORT SHUTDOWN NOSAVE >/dev/null 2>&1 || true
sleep 0.05   # always (see nginx.sh)
i=0; while kill -0 $srv 2>/dev/null; do i=$((i+1)); [ $i -lt 400 ] || { echo "redis did not stop"; kill -9 $srv; break; }; sleep 0.05; done
wait $srv || true
test -s "$d/dump.rdb" && echo "rdb saved"
rm -rf "$d"
