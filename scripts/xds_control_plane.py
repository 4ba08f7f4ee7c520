#!/usr/bin/env python3
"""A small xDS management server for grpctop's tests and demo: one ADS service (state of the
world, envoy.service.discovery.v3.AggregatedDiscoveryService) on grpcio with PyPI `xds-protos`,
serving listeners, route configurations, clusters and cluster load assignments from a JSON file
it re-reads when the file changes (every stream gets the new version).

It is built from the xDS transport protocol's documentation and checked against real clients:
grpcio's own xDS client (`xds:///NAME`) and Envoy (ADS for CDS/EDS) both take what it serves.

Config (JSON):
  {"listeners": {"greeter": {"cluster": "greeter"}                    # inline route, one cluster
                 "canary":  {"weighted": {"green": 80, "blue": 20}},  # inline weighted clusters
                 "web":     {"rds": "web-routes"}},                   # routes over RDS
   "routes":    {"web-routes": {"cluster": "greeter"}},               # or "weighted": {...}
   "clusters":  {"greeter": {}},                  # EDS over ADS, ROUND_ROBIN; "service_name",
                                                  # "type" (STATIC…) and "lb_policy" to break it
   "endpoints": {"greeter": [{"priority": 0, "region": "us", "zone": "zone-a", "weight": 1,
                              "endpoints": [{"address": "127.0.0.1", "port": 50051,
                                             "health": "HEALTHY", "weight": 1}]}],
   "drop": {"greeter": {"lb": 10}}}               # optional drop_overloads, percent

Prints 'xds HOST:PORT' once listening, then one JSON line per event: {"event": "request" | "ack" |
"nack", "type": "LDS"…, "version", "node", "names", "reason"} — tests read ACKs and NACKs from it.
SIGTERM stops it.
"""
import argparse
import json
import os
import queue
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import any_pb2, wrappers_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.type.v3 import percent_pb2

LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
NAMES = {LDS: "LDS", RDS: "RDS", CDS: "CDS", EDS: "EDS"}
HEALTH = {"UNKNOWN": 0, "HEALTHY": 1, "UNHEALTHY": 2, "DRAINING": 3, "TIMEOUT": 4, "DEGRADED": 5}
out_lock = threading.Lock()


def emit(**kw):
    with out_lock:
        print(json.dumps(kw), flush=True)


def packed(msg):
    a = any_pb2.Any()
    a.Pack(msg)
    return a


def route_action(spec):
    action = route_components_pb2.RouteAction()
    if "weighted" in spec:
        for name, w in spec["weighted"].items():
            cw = action.weighted_clusters.clusters.add()
            cw.name = name
            cw.weight.value = w
    else:
        action.cluster = spec["cluster"]
    return action


def route_configuration(name, spec):
    rc = route_pb2.RouteConfiguration(name=name)
    vh = rc.virtual_hosts.add(name=name + "-vh", domains=spec.get("domains", ["*"]))
    r = vh.routes.add()
    r.match.prefix = spec.get("prefix", "")
    r.route.CopyFrom(route_action(spec))
    return rc


def listener(name, spec):
    hcm = hcm_pb2.HttpConnectionManager()
    if "rds" in spec:
        hcm.rds.route_config_name = spec["rds"]
        hcm.rds.config_source.ads.SetInParent()
        hcm.rds.config_source.resource_api_version = config_source_pb2.V3
    else:
        hcm.route_config.CopyFrom(route_configuration(name + "-routes", spec))
    if not spec.get("no_router"):
        f = hcm.http_filters.add(name="envoy.filters.http.router")
        f.typed_config.Pack(router_pb2.Router())
    lst = listener_pb2.Listener(name=name)
    lst.api_listener.api_listener.Pack(hcm)
    return lst


def cluster(name, spec):
    c = cluster_pb2.Cluster(name=name)
    c.type = getattr(cluster_pb2.Cluster, spec.get("type", "EDS"))
    c.lb_policy = getattr(cluster_pb2.Cluster, spec.get("lb_policy", "ROUND_ROBIN"))
    c.eds_cluster_config.eds_config.ads.SetInParent()
    c.eds_cluster_config.eds_config.resource_api_version = config_source_pb2.V3
    if "service_name" in spec:
        c.eds_cluster_config.service_name = spec["service_name"]
    c.connect_timeout.seconds = 1
    return c


def assignment(name, localities, drops):
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    for loc in localities:
        l = cla.endpoints.add()
        l.locality.region = loc.get("region", "")
        l.locality.zone = loc.get("zone", "")
        l.locality.sub_zone = loc.get("sub_zone", "")
        l.priority = loc.get("priority", 0)
        if loc.get("weight", 1):
            l.load_balancing_weight.value = loc.get("weight", 1)
        for e in loc["endpoints"]:
            lb = l.lb_endpoints.add()
            lb.endpoint.address.socket_address.address = e["address"]
            lb.endpoint.address.socket_address.port_value = e["port"]
            if e.get("hostname"):
                lb.endpoint.hostname = e["hostname"]
            lb.health_status = HEALTH[e.get("health", "HEALTHY")]
            if "weight" in e:
                lb.load_balancing_weight.value = e["weight"]
    for category, pct in (drops or {}).items():
        d = cla.policy.drop_overloads.add(category=category)
        d.drop_percentage.numerator = pct
        d.drop_percentage.denominator = percent_pb2.FractionalPercent.HUNDRED
    return cla


class Config:
    """The file, re-read when it changes; each reload is a new version."""

    def __init__(self, path):
        self.path = path
        self.version = 0
        self.data = {}
        self.mtime = None
        self.cond = threading.Condition()
        self.reload()

    def reload(self):
        try:
            st = os.stat(self.path)
            if (st.st_mtime_ns, st.st_size) == self.mtime:
                return False
            with open(self.path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            emit(event="config-error", reason=str(e))
            return False
        with self.cond:
            self.mtime = (st.st_mtime_ns, st.st_size)
            self.data = data
            self.version += 1
            self.cond.notify_all()
        emit(event="config", version=str(self.version))
        return True

    def resources(self, type_url, names):
        d = self.data
        out = []
        if type_url == LDS:
            for n, spec in d.get("listeners", {}).items():
                if not names or n in names:
                    out.append(listener(n, spec))
        elif type_url == RDS:
            for n, spec in d.get("routes", {}).items():
                if n in names:
                    out.append(route_configuration(n, spec))
        elif type_url == CDS:
            for n, spec in d.get("clusters", {}).items():
                if not names or n in names:
                    out.append(cluster(n, spec))
        elif type_url == EDS:
            for n, locs in d.get("endpoints", {}).items():
                if n in names:
                    out.append(assignment(n, locs, d.get("drop", {}).get(n)))
        return [packed(r) for r in out]


class ADS(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, config):
        self.config = config

    def StreamAggregatedResources(self, request_iterator, context):
        subs = {}  # type_url -> names
        sent = {}  # type_url -> (nonce, version)
        nonce = [0]
        node = [""]
        inbox = queue.Queue()
        done = threading.Event()

        def reader():
            try:
                for req in request_iterator:
                    inbox.put(req)
            except Exception:
                pass
            done.set()
            inbox.put(None)

        threading.Thread(target=reader, daemon=True).start()

        def response(type_url):
            nonce[0] += 1
            v = str(self.config.version)
            sent[type_url] = (str(nonce[0]), v)
            return discovery_pb2.DiscoveryResponse(version_info=v, type_url=type_url, nonce=str(nonce[0]),
                                                   resources=self.config.resources(type_url, subs[type_url]))

        seen_version = self.config.version
        while not done.is_set() and context.is_active():
            try:
                req = inbox.get(timeout=0.1)
            except queue.Empty:
                req = None
                if self.config.version != seen_version:
                    seen_version = self.config.version
                    for t in [LDS, RDS, CDS, EDS]:
                        if t in subs:
                            yield response(t)
                continue
            if req is None:
                break
            if req.node.id:
                node[0] = req.node.id
            t = req.type_url
            names = sorted(req.resource_names)
            kind = NAMES.get(t, t)
            if req.HasField("error_detail"):
                emit(event="nack", type=kind, version=req.version_info, node=node[0], reason=req.error_detail.message)
                subs[t] = names
                continue
            last = sent.get(t)
            if last and req.response_nonce == last[0]:
                emit(event="ack", type=kind, version=req.version_info, node=node[0], names=names)
                if names == subs.get(t):
                    continue
            emit(event="request", type=kind, version=req.version_info, node=node[0], names=names)
            subs[t] = names
            yield response(t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    config = Config(args.config)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(ADS(config), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"xds 127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.1):
        config.reload()
    server.stop(0)


if __name__ == "__main__":
    main()
