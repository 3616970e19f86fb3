#!/usr/bin/env bash
# Learn the example server from three runs with different requests, then export the profile
# to every format. Run from the repository root after `make install`:  bash examples/http-server/learn.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lp="${LEASTPRIV:-$here/../../.venv/bin/leastpriv}"
py=/usr/bin/python3   # the system interpreter: a pyenv shim would put bash and pyenv in the profile
port=18080
out="$here/profile.json"
rm -f "$out"
client() {  # wait for the server, make the requests, stop it
    # up to 60 s: a traced interpreter starts slowly on a busy machine, and a client that gave up
    # would leave the server (and learn) waiting for /quit forever
    for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    for p in "$@" /quit; do
        exec 3<>/dev/tcp/127.0.0.1/$port; printf 'GET %s HTTP/1.0\r\n\r\n' "$p" >&3
        cat <&3 >/dev/null 2>&1 || true   # /quit: the server may close before the reply is read
        exec 3>&-
    done
}
for requests in "/" "/about.txt /missing" "/ /about.txt"; do
    client $requests &
    "$lp" learn --backend "${BACKEND:-auto}" -o "$out" -- "$py" "$here/server.py" $port
    wait
done
mkdir -p "$here/export"
"$lp" export "$out" --format docker -o "$here/export/seccomp-docker.json"
"$lp" export "$out" --format oci -o "$here/export/oci-fragment.json"
"$lp" export "$out" --format k8s-seccompprofile --name http-server -o "$here/export/seccompprofile.yaml"
"$lp" export "$out" --format k8s-pod --name http-server --container web -o "$here/export/securitycontext.yaml"
"$lp" export "$out" --format apparmor --name http-server -o "$here/export/apparmor.profile"
"$lp" export "$out" --format systemd -o "$here/export/systemd-dropin.conf"
"$lp" export "$out" --format landlock -o "$here/export/landlock.json"
"$lp" export "$out" --format selinux --name http_server -o "$here/export/selinux.cil"
"$lp" export "$out" --format docker --style denylist -o "$here/export/seccomp-denylist.json"
"$lp" review "$out" --format markdown > "$here/export/review.md" || true
echo "profile: $out; exports: $here/export/"
