#!/usr/bin/env python3
"""A reference gRPC server on Python grpcio, for grpctop's tests: Greeter + standard health.

It behaves like `grpctop serve` where tests look: prints 'serving NAME on HOST:PORT' once
listening, sets `x-served-by: NAME` on every response, drains on SIGTERM (grpcio's
stop(grace): GOAWAY, in-flight RPCs finish) and prints the RPCs it answered per method as JSON.
Messages are encoded by hand (HelloRequest.name = 1, HelloReply.message = 1), so no generated
code is needed.
"""
import argparse
import json
import signal
import sys
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def string_field(s):
    b = s.encode()
    return b"\x0a" + varint(len(b)) + b if b else b""


def read_string_field(data):
    i = 0
    while i < len(data):
        tag = data[i]
        i += 1
        shift = 0
        length = 0
        while True:
            byte = data[i]
            i += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if tag == 0x0A:
            return data[i:i + length].decode()
        i += length
    return ""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--no-health", action="store_true", help="no health service (Watch answers UNIMPLEMENTED)")
    args = p.parse_args()

    counts = {}
    lock = threading.Lock()

    def count(method):
        with lock:
            c = counts.setdefault(method, {"ok": 0, "failed": 0})
            c["ok"] += 1

    class Counting(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            handler = continuation(details)
            if handler is None or handler.unary_unary is None:
                return handler
            inner = handler.unary_unary
            method = details.method

            def wrapped(request, context):
                context.send_initial_metadata((("x-served-by", args.name),))
                reply = inner(request, context)
                count(method)
                return reply

            return grpc.unary_unary_rpc_method_handler(
                wrapped,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

    def say_hello(request, context):
        name = read_string_field(request)
        return string_field("Hello, %s! I am %s (python grpcio)" % (name, args.name))

    greeter = grpc.method_handlers_generic_handler(
        "helloworld.Greeter",
        {"SayHello": grpc.unary_unary_rpc_method_handler(say_hello)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=[Counting()])
    server.add_generic_rpc_handlers((greeter,))
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("helloworld.Greeter", health_pb2.HealthCheckResponse.SERVING)
    if not args.no_health:
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("%s:%d" % (args.host, args.port))
    server.start()
    print("serving %s on %s:%d" % (args.name, args.host, port), flush=True)

    done = threading.Event()

    def on_term(signum, frame):
        done.set()

    # A parent (a test runner) may have left these blocked; a blocked signal never runs its handler.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2})
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    # As `grpctop serve`: SIGUSR1 sets helloworld.Greeter NOT_SERVING (grpcio's health servicer
    # tells its Watch streams), SIGUSR2 sets it SERVING again. The server as a whole ("") stays.
    def set_greeter(status):
        threading.Thread(target=health_servicer.set, args=("helloworld.Greeter", status)).start()

    signal.signal(signal.SIGUSR1, lambda s, f: set_greeter(health_pb2.HealthCheckResponse.NOT_SERVING))
    signal.signal(signal.SIGUSR2, lambda s, f: set_greeter(health_pb2.HealthCheckResponse.SERVING))
    while not done.wait(0.2):
        pass
    server.stop(grace=10).wait()
    with lock:
        total = sum(c["ok"] + c["failed"] for c in counts.values())
        print(json.dumps({"name": args.name, "address": "%s:%d" % (args.host, port), "served": counts, "total": total}, sort_keys=True), flush=True)


if __name__ == "__main__":
    sys.exit(main())
