#!/usr/bin/python3
"""A plain WebSocket ProxyCommand for the gateway benchmark's outside reference: copies stdin to
binary frames and frames to stdout, with websockify's own client (numpy masking).

Usage: ws-proxy.py ws://127.0.0.1:PORT/
"""
import os
import select
import sys

from websockify.websocket import WebSocket, WebSocketWantReadError, WebSocketWantWriteError


def drain(ws, stdout):
    """Writes every frame already received to stdout; False once the peer closed."""
    while True:
        try:
            data = ws.recv()
        except WebSocketWantReadError:
            return True
        if data is None:
            return False
        view = memoryview(data)
        while view:
            view = view[os.write(stdout, view):]
        if not ws.pending():
            return True


def main():
    ws = WebSocket()
    ws.connect(sys.argv[1], protocols=["binary"])
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    while True:
        readable, _, _ = select.select([stdin, ws.socket], [], [])
        if ws.socket in readable and not drain(ws, stdout):
            return
        if stdin in readable:
            data = os.read(stdin, 256 * 1024)
            if not data:
                return
            while True:
                try:
                    ws.send(data)
                    break
                except WebSocketWantWriteError:
                    # Keep reading while the socket is full, so neither side waits on the other.
                    readable, _, _ = select.select([ws.socket], [ws.socket], [])
                    if readable and not drain(ws, stdout):
                        return


if __name__ == "__main__":
    main()
