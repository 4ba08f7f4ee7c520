#!/usr/bin/env python3
"""A gRPC client application on Python grpcio with channelz, for `grpctop attach`'s tests.

It holds one channel to --target with --lb (round_robin or pick_first) and sends
helloworld.Greeter/SayHello at --rps; the process registers grpcio's channelz service on an
admin server (127.0.0.1, a free port) and prints 'admin HOST:PORT' once it listens. SIGUSR1
stops the traffic (channelz stays up, so its counters can be compared with the servers'),
SIGTERM ends the process and prints what it counted as JSON: {"sent": N, "ok": N, "failed": N}.
With --serve the admin server also answers helloworld.Greeter/SayHello, so the process is a
server too (its client connections show in channelz's GetServerSockets). With --tls-ca the
channel speaks TLS (its sockets then carry the cipher and the peer certificate).
"""
import argparse
import json
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_channelz.v1 import channelz


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True)
    p.add_argument("--lb", default="round_robin")
    p.add_argument("--rps", type=float, default=50)
    p.add_argument("--channels", type=int, default=1, help="extra idle channels (paging tests)")
    p.add_argument("--serve", action="store_true", help="also serve Greeter on the admin port")
    p.add_argument("--tls-ca", help="PEM CA: the channel uses TLS (server name localhost)")
    args = p.parse_args()
    # The test runner may leave signals blocked for its children.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGUSR1, signal.SIGINT})

    admin = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    channelz.add_channelz_servicer(admin)
    if args.serve:
        hello = grpc.unary_unary_rpc_method_handler(lambda request, context: b"\x0a\x02hi")
        admin.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("helloworld.Greeter", {"SayHello": hello}),))
    port = admin.add_insecure_port("127.0.0.1:0")
    admin.start()

    options = [("grpc.lb_policy_name", args.lb), ("grpc.enable_channelz", 1)]
    if args.tls_ca:
        with open(args.tls_ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        channel = grpc.secure_channel(args.target, creds, options=options + [("grpc.ssl_target_name_override", "localhost")])
    else:
        channel = grpc.insecure_channel(args.target, options=options)
    extra = [grpc.insecure_channel(f"dns:///extra-{i}.invalid:1", options=options) for i in range(args.channels - 1)]
    say = channel.unary_unary("/helloworld.Greeter/SayHello")
    counts = {"sent": 0, "ok": 0, "failed": 0}
    lock = threading.Lock()
    sending = threading.Event()
    sending.set()
    done = threading.Event()

    def finished(f):
        with lock:
            counts["ok" if f.exception() is None else "failed"] += 1

    def traffic():
        interval = 1.0 / args.rps
        nxt = time.monotonic()
        while not done.is_set():
            if not sending.is_set():
                time.sleep(0.05)
                continue
            with lock:
                counts["sent"] += 1
            say.future(b"\x0a\x08channelz", timeout=5).add_done_callback(finished)
            nxt += interval
            time.sleep(max(0.0, nxt - time.monotonic()))

    signal.signal(signal.SIGUSR1, lambda *_: sending.clear())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    print(f"admin 127.0.0.1:{port}", flush=True)
    while not done.wait(0.2):
        pass
    t.join(2)
    time.sleep(0.3)
    with lock:
        print(json.dumps(counts), flush=True)
    channel.close()
    for c in extra:
        c.close()
    admin.stop(0)


if __name__ == "__main__":
    sys.exit(main())
