"""A stand-in dev server for wait tests: starts slowly, then serves HTTP, or dies trying.

python devserver.py --delay 1.5 --port 0       # sleeps, listens, prints "ready on http://..."
python devserver.py --delay 0.5 --die "boom"   # sleeps, writes "boom" to stderr, exits 3
"""

from __future__ import annotations

import argparse
import http.server
import sys
import time


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--die", default=None)
    options = parser.parse_args()
    print("starting up", flush=True)
    time.sleep(options.delay)
    if options.die is not None:
        print(options.die, file=sys.stderr, flush=True)
        sys.exit(3)
    server = http.server.HTTPServer(("127.0.0.1", options.port), Quiet)
    print(f"\x1b[32mready\x1b[0m on http://127.0.0.1:{server.server_port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
