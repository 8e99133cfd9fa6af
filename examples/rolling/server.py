"""A small HTTP server for rolling restarts: it serves on the socket sysg hands it (fd 3,
``LISTEN_FDS=1``) and, on SIGTERM, stops accepting and finishes what it has accepted.

Both generations of a rolling restart accept from the same listening socket, so a
connection is always taken by one of them (or waits in the kernel's backlog), never
refused. What makes the switch lossless on the server's side is the SIGTERM handling: the
old generation answers every request it has accepted before it exits.

It tells sysg it is up with ``READY=1`` on ``$NOTIFY_SOCKET`` (``notify: true``): with a
shared socket, an HTTP health check could be answered by the *old* generation, while
READY=1 comes from the new process itself. ``GET /`` answers ``<pid> <GENERATION>``.
Without ``LISTEN_FDS`` it binds ``$PORT`` itself (the immediate-restart comparison); with
``BROKEN`` set it exits 3 at once, with ``NO_READY`` it never sends READY=1 (two ways for
a new generation to fail).
"""

import http.server
import os
import selectors
import signal
import socket
import sys

SD_LISTEN_FDS_START = 3


def listening_socket() -> socket.socket:
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS") == "1":
        return socket.socket(fileno=SD_LISTEN_FDS_START)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(os.environ.get("PORT", "8080"))))
    sock.listen(128)
    return sock


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection

    def do_GET(self) -> None:
        body = f"{os.getpid()} {os.environ.get('GENERATION', '-')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would flood the log under load


def notify_ready() -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if path:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ns:
            ns.sendto(b"READY=1", path)


def main() -> None:
    if os.environ.get("BROKEN"):
        print("BROKEN is set: refusing to start", flush=True)
        sys.exit(3)
    sock = listening_socket()
    # Non-blocking accept: two generations wait on the same socket, and the one that loses
    # the race for a connection must go back to waiting, not block in accept().
    sock.setblocking(False)
    server = http.server.HTTPServer(sock.getsockname()[:2], Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    print(f"pid {os.getpid()} serving on {sock.getsockname()}", flush=True)
    if not os.environ.get("NO_READY"):  # NO_READY: serves, but never says so (a test)
        notify_ready()
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while not stopping:
            if selector.select(timeout=0.1):
                server._handle_request_noblock()
    print(f"pid {os.getpid()} stopped accepting; exiting", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
