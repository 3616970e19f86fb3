# nginx (HTTP server) in its own mktemp -d directory; serves the pages named in $@ (a name
# starting with "missing" is not created: a 404), fetched with curl on 127.0.0.1.
set -eu
PORT=${LP_GEN_PORT:-18481}   # the suite passes a free port (tests/test_generalize_suite.py)
d=$(mktemp -d)
mkdir "$d/html" "$d/logs"
for p in "$@"; do case $p in missing*) ;; *) echo "page $p" > "$d/html/$p.html";; esac; done
cat > "$d/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $d/nginx.pid; error_log $d/logs/error.log;
events { worker_connections 64; }
http { access_log $d/logs/access.log; client_body_temp_path $d/body; proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fcgi; uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;
  server { listen 127.0.0.1:$PORT; root $d/html; } }
EOF
nginx -e "$d/logs/error.log" -c "$d/nginx.conf" &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
sleep 0.05   # always: a wait taken only when the machine is slow was a path the learning runs missed
i=0; until curl -s -o /dev/null "http://127.0.0.1:$PORT/"; do i=$((i+1)); [ $i -lt 400 ] || exit 9; sleep 0.05; done
for p in "$@"; do
    curl -s -w " %{http_code}\n" -o "$d/body.out" "http://127.0.0.1:$PORT/$p.html"
    grep -c page "$d/body.out" || true
done
kill $srv; wait $srv || true
wc -l < "$d/logs/access.log"
rm -rf "$d"
