"""A small HTTP server for the enforcement tests.

enforce_httpd.py DOCROOT LOGFILE PORT: binds 127.0.0.1:PORT, serves files from
DOCROOT, appends one line per request to LOGFILE. GET /quit stops it.
A failed bind prints "bind: errno N ..." and exits 6; a failed log write
answers 500 with "log: errno N ..." in the body.
"""
import os
import socket
import sys

docroot, log, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    srv.bind(("127.0.0.1", port))
except OSError as exc:
    print(f"bind: errno {exc.errno} {exc.strerror}", file=sys.stderr, flush=True)
    sys.exit(6)
srv.listen(8)
print("listening", flush=True)
while True:
    conn, _ = srv.accept()
    request = conn.recv(4096).decode(errors="replace").split()
    path = request[1] if len(request) > 1 else "/"
    if path == "/quit":
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nbye")
        conn.close()
        break
    try:
        with open(os.path.join(docroot, path.lstrip("/")), "rb") as fh:
            status, body = "200 OK", fh.read()
    except OSError as exc:
        status, body = "404 Not Found", f"open: errno {exc.errno}".encode()
    try:
        with open(log, "a") as fh:
            fh.write(f"GET {path} {status.split()[0]}\n")
    except OSError as exc:
        status, body = "500 Internal Server Error", f"log: errno {exc.errno} {exc.strerror}".encode()
    conn.sendall(f"HTTP/1.0 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    conn.close()
srv.close()
