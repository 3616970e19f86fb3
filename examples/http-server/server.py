"""A tiny file server: reads files under www/, appends to logs/access.log, binds 127.0.0.1:PORT.

    python3 server.py PORT       (GET /quit stops it)
"""
import os
import socket
import sys

here = os.path.dirname(os.path.abspath(__file__))
port = int(sys.argv[1])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(8)
os.makedirs(os.path.join(here, "logs"), exist_ok=True)
while True:
    conn, _ = srv.accept()
    words = conn.recv(4096).decode(errors="replace").split()
    path = words[1] if len(words) > 1 else "/"
    if path == "/quit":
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nbye")
        conn.close()
        break
    try:
        with open(os.path.join(here, "www", path.lstrip("/") or "index.html"), "rb") as fh:
            status, body = "200 OK", fh.read()
    except OSError:
        status, body = "404 Not Found", b"not found"
    with open(os.path.join(here, "logs", "access.log"), "a") as fh:
        fh.write(f"GET {path} {status.split()[0]}\n")
    conn.sendall(f"HTTP/1.0 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    conn.close()
