#!/usr/bin/python3
"""A plain WebSocket ProxyCommand for the gateway benchmark's outside reference: copies stdin to
binary frames and frames to stdout, with websockify's own client (numpy masking).

Usage: ws-proxy.py ws://127.0.0.1:PORT/
"""
import os
import select
import sys

from websockify.websocket import WebSocket


def main():
    ws = WebSocket()
    ws.connect(sys.argv[1], protocols=["binary"])
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    while True:
        readable, _, _ = select.select([stdin, ws.socket], [], [])
        if stdin in readable:
            data = os.read(stdin, 256 * 1024)
            if not data:
                break
            ws.send(data)
        if ws.socket in readable:
            while True:
                data = ws.recv()
                if data is None:
                    return
                view = memoryview(data)
                while view:
                    view = view[os.write(stdout, view):]
                if not ws.pending():
                    break


if __name__ == "__main__":
    main()
