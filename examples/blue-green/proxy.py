"""The traffic switch of the blue/green example: a TCP proxy on ``$PROXY_PORT``.

Each new connection goes to ``127.0.0.1:<port>``, the port read from ``./upstream`` (written
by ``switch.sh``) when the connection arrives, or ``$FIRST_UPSTREAM`` before there is one. A
connection keeps the upstream it started with, so requests under way when the switch happens
finish on the old generation, which serves on for ``grace_period``.
"""

import os
import socket
import threading

LISTEN = int(os.environ.get("PROXY_PORT", "8080"))


def upstream() -> int:
    try:
        with open("upstream", encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return int(os.environ.get("FIRST_UPSTREAM", "8001"))


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(client: socket.socket) -> None:
    with client:
        try:
            server = socket.create_connection(("127.0.0.1", upstream()), timeout=5)
        except OSError:
            return  # nothing serves there: the client sees the connection closed
        with server:
            server.settimeout(None)
            back = threading.Thread(target=pipe, args=(server, client), daemon=True)
            back.start()
            pipe(client, server)
            back.join()


def main() -> None:
    listener = socket.create_server(("127.0.0.1", LISTEN), backlog=256)
    print(f"proxy on 127.0.0.1:{LISTEN} -> 127.0.0.1:{upstream()}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
