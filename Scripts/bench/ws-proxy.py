#!/usr/bin/python3
"""A plain WebSocket ProxyCommand for the gateway benchmark's outside reference: copies stdin to
masked binary frames and frames to stdout (RFC 6455, numpy masking, no library).

(websockify 0.10's own client cannot send under Python 3: it adds an int to bytes when masking.)

Usage: ws-proxy.py ws://127.0.0.1:PORT/PATH
"""
import base64
import os
import select
import socket
import struct
import sys
from urllib.parse import urlparse

import numpy


def handshake(url):
    parts = urlparse(url)
    sock = socket.create_connection((parts.hostname, parts.port or 80))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("the server closed during the handshake")
        response += chunk
    head, rest = response.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        sys.exit("upgrade refused: " + head.split(b"\r\n")[0].decode())
    return sock, rest


def frame(payload, opcode=0x2):
    length = len(payload)
    first = 0x80 | opcode
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    mask = os.urandom(4)
    padded = payload + b"\0" * (-length % 4)
    masked = (numpy.frombuffer(padded, dtype="<u4") ^ numpy.frombuffer(mask, dtype="<u4")).tobytes()[:length]
    return header + mask + masked


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main():
    sock, pending = handshake(sys.argv[1])
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    buffer = bytearray(pending)
    while True:
        readable, _, _ = select.select([stdin, sock], [], [])
        if sock in readable:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 2:
                opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
                offset = 2
                if length == 126:
                    if len(buffer) < 4:
                        break
                    length, offset = struct.unpack_from("!H", buffer, 2)[0], 4
                elif length == 127:
                    if len(buffer) < 10:
                        break
                    length, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
                if len(buffer) < offset + length:
                    break
                payload = bytes(buffer[offset:offset + length])
                del buffer[:offset + length]
                if opcode == 0x8:
                    return
                if opcode == 0x9:
                    sock.sendall(frame(payload, opcode=0xA))
                elif opcode in (0x0, 0x2):
                    write_all(stdout, payload)
        if stdin in readable:
            data = os.read(stdin, 256 * 1024)
            if not data:
                return
            sock.sendall(frame(data))


if __name__ == "__main__":
    main()
