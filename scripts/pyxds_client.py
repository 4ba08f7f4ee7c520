#!/usr/bin/env python3
"""grpcio's own xDS client as a reference for grpctop's: sends --count
helloworld.Greeter/SayHello RPCs on a channel to --target (xds:///NAME, with GRPC_XDS_BOOTSTRAP
set) and prints one JSON line: {"pod": count, …, "failed": n} by the x-served-by response header
`grpctop serve` sets. The same control plane config must give grpctop the same proportions.
"""
import argparse
import collections
import json
import signal

import grpc


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True)
    p.add_argument("--count", type=int, default=1000)
    args = p.parse_args()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    channel = grpc.insecure_channel(args.target)
    say = channel.unary_unary("/helloworld.Greeter/SayHello")
    counts = collections.Counter()
    for _ in range(args.count):
        try:
            _, call = say.with_call(b"\x0a\x06grpcio", timeout=10, wait_for_ready=True)
            counts[dict(call.initial_metadata()).get("x-served-by", "?")] += 1
        except grpc.RpcError:
            counts["failed"] += 1
    print(json.dumps(dict(counts)), flush=True)


if __name__ == "__main__":
    main()
