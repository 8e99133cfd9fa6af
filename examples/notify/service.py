"""notify example: a tiny sd_notify(3) service using only the standard library.

It warms up for a moment, sends READY=1, then pings the watchdog (WATCHDOG=1) every half of
WATCHDOG_USEC and reports what it is doing with STATUS= lines. It exits 0 on SIGTERM.
"""

import os
import signal
import socket
import sys
import time


def notify(sock: socket.socket | None, addr: str, *lines: str) -> None:
    """Send one datagram of KEY=VALUE lines; a no-op when not run under a supervisor."""
    if sock is not None:
        sock.sendto("\n".join(lines).encode(), addr)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if addr.startswith("@"):  # an abstract socket name (systemd's convention)
        addr = "\0" + addr[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if addr else None
    # Ping at half the watchdog period, as sd_watchdog_enabled(3) advises (1 s if unset).
    period = int(os.environ.get("WATCHDOG_USEC", "2000000")) / 2 / 1e6

    notify(sock, addr, "STATUS=warming up")
    time.sleep(0.5)  # stands for loading a config, opening a database, ...
    notify(sock, addr, "READY=1", "STATUS=ready, 0 ticks")
    print("ready", flush=True)

    ticks = 0
    while True:
        time.sleep(period)
        ticks += 1
        notify(sock, addr, "WATCHDOG=1", f"STATUS=ready, {ticks} ticks")


if __name__ == "__main__":
    sys.exit(main())
