"""ptrace test workload: a TCP server forked on 127.0.0.1 and a client talking to it, plus unix sockets.

argv: PORT ABSTRACT_NAME UNIX_PATH
"""
import os
import socket
import sys

port, abstract, unix_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(1)
ab = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ab.bind("\0" + abstract)
if os.path.exists(unix_path):
    os.unlink(unix_path)
us = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
us.bind(unix_path)
pid = os.fork()
if pid == 0:
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"ping")
    print("client got", c.recv(4).decode(), flush=True)
    os._exit(0)
conn, _ = srv.accept()
data = conn.recv(4)
conn.sendall(b"pong")
conn.close()
os.waitpid(pid, 0)
us.close()
os.unlink(unix_path)
print("server got", data.decode(), flush=True)
