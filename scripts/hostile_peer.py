#!/usr/bin/env python3
"""A gRPC server that misbehaves on purpose, for grpctop's hostile-peer tests (issue 15).

    hostile_peer.py MODE [--port 0]

Prints 'serving MODE on 127.0.0.1:PORT' once listening; on SIGTERM prints one JSON line
{"connections": N, "streams": N} and exits. HTTP/2 is spoken by hand (RFC 9113 frames, HPACK
literals without Huffman), so every misbehaviour is exact. Modes:

  http1            answers the client's preface with an HTTP/1.1 400 response
  random           sends random bytes
  settings-goaway  SETTINGS, then GOAWAY(NO_ERROR), then closes — every connection
  rst-storm        answers every stream with RST_STREAM(INTERNAL_ERROR), and resets streams it never saw
  huge-headers     response headers with a 1 MiB value (CONTINUATION frames)
  endless-headers  HEADERS without END_HEADERS, then CONTINUATION frames forever
  big-prefix       a response message whose length prefix claims 4 GiB, 100 bytes, OK trailers
  endless-message  a message claiming 3 MiB whose bytes trickle forever (never completes)
  ping-flood       answers normally, and sends PINGs without pause
  settings-flood   answers normally, and sends SETTINGS frames without pause
  flow-violation   sends more DATA than the client's stream window allows
  ok               a well-behaved server (the control case)
"""
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
counts = {"connections": 0, "streams": 0}
lock = threading.Lock()
stopping = threading.Event()


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid & 0x7FFFFFFF) + payload


def literal(name, value):
    n, v = name.encode(), value.encode()
    assert len(n) < 127
    out = b"\x00" + bytes([len(n)]) + n
    if len(v) < 127:
        return out + bytes([len(v)]) + v
    # HPACK integer with a 7-bit prefix
    rest = len(v) - 127
    enc = bytearray([127])
    while rest >= 128:
        enc.append((rest & 0x7F) | 0x80)
        rest >>= 7
    enc.append(rest)
    return out + bytes(enc) + v


def response_headers(extra=()):
    block = b"\x88" + literal("content-type", "application/grpc")  # :status 200 (static index 8)
    for k, v in extra:
        block += literal(k, v)
    return block


def trailers(status=0):
    return literal("grpc-status", str(status))


def message(payload):
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def read_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_frame(conn):
    head = read_exact(conn, 9)
    length = struct.unpack(">I", b"\x00" + head[:3])[0]
    ftype, flags = head[3], head[4]
    sid = struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF
    return ftype, flags, sid, read_exact(conn, length) if length else b""


def flood(conn, make):
    """Sends make() frames until the peer goes away (bounded by stopping)."""
    try:
        while not stopping.is_set():
            conn.sendall(make())
    except OSError:
        pass


def serve_connection(conn):
    with lock:
        counts["connections"] += 1
    try:
        if mode == "random":
            conn.sendall(os.urandom(4096))
            time.sleep(0.5)
            return
        read_exact(conn, len(PREFACE))
        if mode == "http1":
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request")
            return
        conn.sendall(frame(SETTINGS, 0, 0))
        if mode == "settings-goaway":
            conn.sendall(frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)))
            time.sleep(0.05)
            return
        if mode == "ping-flood":
            threading.Thread(target=flood, args=(conn, lambda: frame(PING, 0, 0, os.urandom(8)) * 64), daemon=True).start()
        if mode == "settings-flood":
            threading.Thread(target=flood, args=(conn, lambda: frame(SETTINGS, 0, 0) * 64), daemon=True).start()
        sent_lock = threading.Lock()

        def send(data):
            with sent_lock:
                conn.sendall(data)

        while not stopping.is_set():
            ftype, flags, sid, payload = read_frame(conn)
            if ftype == SETTINGS and not flags & ACK:
                send(frame(SETTINGS, ACK, 0))
            elif ftype == PING and not flags & ACK:
                send(frame(PING, ACK, 0, payload))
            elif ftype == HEADERS:
                with lock:
                    counts["streams"] += 1
                answer(send, conn, sid)
    except (OSError, ConnectionError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def answer(send, conn, sid):
    if mode == "rst-storm":
        send(frame(RST_STREAM, 0, sid, struct.pack(">I", 2)) + frame(RST_STREAM, 0, sid + 1000, struct.pack(">I", 2)))
    elif mode == "huge-headers":
        block = response_headers([("x-huge", "h" * (1 << 20))])
        chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
        out = frame(HEADERS, 0, sid, chunks[0])
        for i, c in enumerate(chunks[1:]):
            out += frame(CONTINUATION, END_HEADERS if i == len(chunks) - 2 else 0, sid, c)
        send(out + frame(DATA, 0, sid, message(b"")) + frame(HEADERS, END_HEADERS | END_STREAM, sid, trailers()))
    elif mode == "endless-headers":
        send(frame(HEADERS, 0, sid, response_headers()))
        flood(conn, lambda: frame(CONTINUATION, 0, sid, literal("x-more", "m" * 100)) * 16)
    elif mode == "big-prefix":
        send(frame(HEADERS, END_HEADERS, sid, response_headers())
             + frame(DATA, 0, sid, b"\x00" + struct.pack(">I", 0xFFFFFFFF) + b"x" * 100)
             + frame(HEADERS, END_HEADERS | END_STREAM, sid, trailers()))
    elif mode == "endless-message":
        send(frame(HEADERS, END_HEADERS, sid, response_headers()) + frame(DATA, 0, sid, b"\x00" + struct.pack(">I", 3 << 20)))

        def trickle():
            try:
                while not stopping.is_set():
                    send(frame(DATA, 0, sid, b"y" * 64))
                    time.sleep(0.05)
            except OSError:
                pass
        threading.Thread(target=trickle, daemon=True).start()
    elif mode == "flow-violation":
        # 8 MiB on one stream without waiting for WINDOW_UPDATE (the client's window is 4 MiB).
        send(frame(HEADERS, END_HEADERS, sid, response_headers()))
        chunk = frame(DATA, 0, sid, b"z" * 16384)
        try:
            for _ in range(512):
                send(chunk)
        except OSError:
            pass
    else:  # ok, ping-flood, settings-flood
        send(frame(HEADERS, END_HEADERS, sid, response_headers()) + frame(DATA, 0, sid, message(b""))
             + frame(HEADERS, END_HEADERS | END_STREAM, sid, trailers()))


def main():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    srv.settimeout(0.2)

    def stop(*_):
        stopping.set()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # The Swift test runner's children inherit a blocked SIGTERM.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    print(f"serving {mode} on 127.0.0.1:{srv.getsockname()[1]}", flush=True)
    while not stopping.is_set():
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        except OSError:
            break
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()
    with lock:
        print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
