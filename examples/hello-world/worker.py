"""hello-world worker: fetch a URL every few seconds and print one line about it.

Usage: python3 worker.py URL [INTERVAL_SECONDS]

A failed fetch (the web service restarting) is printed to stderr and retried; the worker
exits 0 on SIGTERM so `sysg stop` is a clean stop.
"""

import signal
import sys
import time
import urllib.request


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8765/"
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    n = 0
    while True:
        n += 1
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                body = resp.read()
            title = body.split(b"<title>")[-1].split(b"</title>")[0].decode(errors="replace")
            print(f"fetch #{n}: {resp.status} {len(body)} bytes - {title}", flush=True)
        except OSError as exc:
            print(f"fetch #{n}: {url} unreachable ({exc})", file=sys.stderr, flush=True)
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
