#!/usr/bin/python3
"""Opens COUNT WebSocket connections to URL, reads each one's first bytes (the agent's SSH banner),
prints "ready" and holds them idle until stdin closes. For the gateway's memory per connection.

Usage: ws-idle.py URL COUNT
"""
import sys
from urllib.parse import urlparse

from websockify.websocket import WebSocket


class QueryWebSocket(WebSocket):
    """websockify's client drops the query string; the gateway wants ?token=."""

    def __init__(self, query):
        super().__init__()
        self._query = query

    def _queue_str(self, string):
        if string.startswith("GET ") and self._query:
            string = string.replace(" HTTP/1.1", "?" + self._query + " HTTP/1.1", 1)
        super()._queue_str(string)


def main():
    url, count = sys.argv[1], int(sys.argv[2])
    query = urlparse(url).query
    sockets = []
    for _ in range(count):
        ws = QueryWebSocket(query)
        ws.connect(url)
        banner = b""
        while b"\n" not in banner:
            data = ws.recv()
            if data is None:
                sys.exit("connection closed before the banner")
            banner += data
        sockets.append(ws)
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
