#!/usr/bin/env python3
"""A Consul agent stand-in for grpctop's tests: one node, one datacenter, the HTTP API as
Consul's documentation describes it (no Consul server can be installed here: Debian and PyPI
carry only clients).

What it serves (https://developer.hashicorp.com/consul/api-docs):
  GET  /v1/health/service/:service   ?passing ?tag ?dc ?near ?index ?wait   (blocking)
  GET  /v1/catalog/service/:service  (blocking), /v1/catalog/services, /v1/catalog/datacenters
  PUT  /v1/agent/service/register    (Check / Checks: TTL or GRPC; keys in any case)
  PUT  /v1/agent/service/deregister/:id
  PUT  /v1/agent/check/register, /v1/agent/check/deregister/:id
  PUT  /v1/agent/check/pass|warn|fail/:id ?note   PUT /v1/agent/check/update/:id
  GET  /v1/agent/service/:id, /v1/agent/services, /v1/agent/checks, /v1/agent/self
  GET  /v1/status/leader
Blocking queries: `index` and `wait` (default 5m, at most 10m, plus up to wait/16 of jitter);
the request hangs while the resource's index is <= `index` (so a client holding an index from
before a restart waits out its `wait` and then sees the index go backwards, as with Consul).
Every write raises the index. New checks start critical. TTL checks go critical with
"TTL expired"; gRPC checks call grpc.health.v1.Health/Check every Interval (needs grpcio).
A service critical for longer than DeregisterCriticalServiceAfter (at least 1m) is removed.
GET on an agent write endpoint is 405, as on Consul >= 1.0.

ACLs (--acl FILE, JSON): {"tokens": {"SECRET": {"AccessorID": "...", "service_read": ["web"],
"service_write": ["web"], "node_read": true}}} — lists of service-name prefixes ("" = all).
With ACLs on, the anonymous token (no X-Consul-Token / ?token) has no rights; an unknown token
is 403 "ACL not found"; reads the token may not see are filtered out of the answer with
X-Consul-Results-Filtered-By-ACLs: true; a write it may not do is 403 "Permission denied:
token with AccessorID '…' lacks permission 'service:write' on \"web\"".

  consul_standin.py [--host 127.0.0.1] [--port 0] [--index-start 10] [--acl FILE]
Prints "listening HOST:PORT" once it accepts connections.
"""
import argparse
import json
import random
import re
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NODE = "standin-node"
DC = "dc1"
NODE_ID = str(uuid.uuid4())


def parse_duration(text):
    """Go's time.ParseDuration for the units Consul's wait uses; None if not a duration."""
    if text is None or text == "":
        return None
    if text.isdigit():  # Consul treats a bare number as seconds? It refuses; so do we.
        return None
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if re.sub(r"(\d+(?:\.\d+)?)(ms|s|m|h)", "", text) != "":
        return None
    return total


def lower_keys(obj):
    """Consul decodes registration bodies case-insensitively (python-consul sends 'name', 'ttl')."""
    if isinstance(obj, dict):
        return {k.lower(): (v if k.lower() in ("meta",) else lower_keys(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [lower_keys(v) for v in obj]
    return obj


class State:
    def __init__(self, index_start, acl):
        self.cond = threading.Condition()
        self.index = index_start
        self.services = {}      # id -> service dict
        self.checks = {}        # id -> check dict
        self.tombstones = {}    # service name -> index of its last deregistration
        self.table_index = index_start
        self.acl = acl
        self.node_check = {"Node": NODE, "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing",
                           "Notes": "", "Output": "Agent alive and reachable", "ServiceID": "", "ServiceName": "",
                           "ServiceTags": [], "Type": "", "CreateIndex": index_start, "ModifyIndex": index_start}

    # -- writes (hold cond) --
    def bump(self):
        self.index += 1
        self.cond.notify_all()
        return self.index

    def service_index(self, name):
        idx = self.tombstones.get(name, 0)
        for s in self.services.values():
            if s["Service"] == name:
                idx = max(idx, s["ModifyIndex"])
                for c in self.checks.values():
                    if c["ServiceID"] == s["ID"]:
                        idx = max(idx, c["ModifyIndex"])
        return max(idx, self.table_index, 1) if idx == 0 else max(idx, 1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, fmt, *args):
        pass

    # -- plumbing --
    def reply(self, code, body, headers=None):
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if not isinstance(body, str) else body.encode())
        self.send_response(code)
        ctype = "application/json" if not isinstance(body, str) else "text/plain; charset=utf-8"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)

    def split(self):
        u = urllib.parse.urlsplit(self.path)
        return u.path, urllib.parse.parse_qs(u.query, keep_blank_values=True)

    def body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        if not raw:
            return {}
        return json.loads(raw)

    def token(self, q):
        return self.headers.get("X-Consul-Token") or (q.get("token") or [None])[0]

    def identity(self, q):
        """(rights, None) or (None, error reply args)."""
        st = self.state
        if st.acl is None:
            return {"all": True}, None
        tok = self.token(q)
        if not tok:
            return {"AccessorID": "00000000-0000-0000-0000-000000000002", "service_read": [], "service_write": [], "node_read": False}, None
        rights = st.acl.get("tokens", {}).get(tok)
        if rights is None:
            return None, (403, "ACL not found")
        return rights, None

    @staticmethod
    def may(rights, kind, name=""):
        if rights.get("all"):
            return True
        if kind == "node:read":
            return bool(rights.get("node_read"))
        prefixes = rights.get("service_write" if kind == "service:write" else "service_read", [])
        if kind == "service:read":
            prefixes = list(prefixes) + list(rights.get("service_write", []))
        return any(name.startswith(p) for p in prefixes)

    def denied(self, rights, perm, name):
        self.reply(403, "Permission denied: token with AccessorID '%s' lacks permission '%s' on \"%s\"" % (rights.get("AccessorID", "?"), perm, name))

    # -- blocking --
    def block(self, q, current):
        """Waits while current() <= index; returns the index to report."""
        st = self.state
        idx = q.get("index", [None])[0]
        with st.cond:
            now_idx = current()
            if idx is None:
                return now_idx
            try:
                want = int(idx)
            except ValueError:
                return None
            wait = parse_duration(q.get("wait", ["5m"])[0])
            if wait is None:
                wait = 300.0
            wait = min(wait, 600.0)
            wait += random.uniform(0, wait / 16)
            deadline = time.monotonic() + wait
            while now_idx <= want:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                st.cond.wait(left)
                now_idx = current()
            return now_idx

    # -- GET --
    def do_GET(self):
        path, q = self.split()
        st = self.state
        if re.fullmatch(r"/v1/agent/(service/(register|deregister/.+)|check/(register|deregister|pass|warn|fail|update)(/.+)?)", path):
            return self.reply(405, "method GET not allowed")
        rights, err = self.identity(q)
        if err:
            return self.reply(*err)
        if path.startswith("/v1/health/service/") or path.startswith("/v1/catalog/service/"):
            health = path.startswith("/v1/health/")
            name = urllib.parse.unquote(path.split("/", 4)[4])
            dc = q.get("dc", [DC])[0]
            if dc != DC:
                return self.reply(500, "No path to datacenter")
            if "wait" in q and parse_duration(q["wait"][0]) is None:
                return self.reply(400, "Invalid wait time")
            idx = self.block(q, lambda: st.service_index(name))
            if idx is None:
                return self.reply(400, "Invalid index")
            with st.cond:
                tags = q.get("tag", [])
                passing = "passing" in q and q["passing"][0].lower() not in ("false", "0")
                out, filtered = [], False
                for s in sorted(st.services.values(), key=lambda s: s["ID"]):
                    if s["Service"] != name or any(t not in s["Tags"] for t in tags):
                        continue
                    if not self.may(rights, "service:read", name) or not self.may(rights, "node:read"):
                        filtered = True
                        continue
                    checks = [dict(st.node_check)] + [self.public_check(c) for c in st.checks.values() if c["ServiceID"] == s["ID"]]
                    if passing and any(c["Status"] != "passing" for c in checks):
                        continue
                    node = {"ID": NODE_ID, "Node": NODE, "Address": "127.0.0.1", "Datacenter": DC,
                            "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"}, "Meta": {"consul-network-segment": ""},
                            "CreateIndex": 5, "ModifyIndex": 5}
                    if health:
                        out.append({"Node": node, "Service": dict(s), "Checks": checks})
                    else:
                        e = {"ID": NODE_ID, "Node": NODE, "Address": "127.0.0.1", "Datacenter": DC}
                        e.update({"Service" + k: v for k, v in s.items() if k not in ("CreateIndex", "ModifyIndex")})
                        out.append(e)
            headers = {"X-Consul-Index": idx, "X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"}
            if filtered:
                headers["X-Consul-Results-Filtered-By-ACLs"] = "true"
            return self.reply(200, out, headers)
        if path == "/v1/catalog/services":
            idx = self.block(q, lambda: st.index)
            with st.cond:
                out = {}
                for s in st.services.values():
                    if self.may(rights, "service:read", s["Service"]):
                        out.setdefault(s["Service"], [])
                        out[s["Service"]] = sorted(set(out[s["Service"]]) | set(s["Tags"]))
            return self.reply(200, out, {"X-Consul-Index": idx, "X-Consul-KnownLeader": "true"})
        if path == "/v1/catalog/datacenters":
            return self.reply(200, [DC])
        if path == "/v1/status/leader":
            return self.reply(200, "127.0.0.1:8300")
        if path == "/v1/agent/self":
            return self.reply(200, {"Config": {"Datacenter": DC, "NodeName": NODE, "NodeID": NODE_ID, "Version": "standin"},
                                    "Member": {"Name": NODE, "Addr": "127.0.0.1", "Port": 8301, "Status": 1}})
        if path == "/v1/agent/services":
            with st.cond:
                return self.reply(200, {i: s for i, s in st.services.items() if self.may(rights, "service:read", s["Service"])})
        if path == "/v1/agent/checks":
            with st.cond:
                return self.reply(200, {i: self.public_check(c) for i, c in st.checks.items()})
        m = re.fullmatch(r"/v1/agent/service/(.+)", path)
        if m:
            sid = urllib.parse.unquote(m.group(1))
            with st.cond:
                s = st.services.get(sid)
                if s is None:
                    return self.reply(404, "unknown service ID: %s" % sid)
                if not self.may(rights, "service:read", s["Service"]):
                    return self.denied(rights, "service:read", s["Service"])
                return self.reply(200, s)
        return self.reply(404, "404 page not found")

    @staticmethod
    def public_check(c):
        return {k: v for k, v in c.items() if not k.startswith("_")}

    # -- PUT --
    def do_PUT(self):
        path, q = self.split()
        st = self.state
        rights, err = self.identity(q)
        if err:
            return self.reply(*err)
        try:
            body = self.body_json()
        except ValueError as e:
            return self.reply(400, "Request decode failed: %s" % e)
        if path == "/v1/agent/service/register":
            return self.register_service(lower_keys(body) if isinstance(body, dict) else {}, rights)
        m = re.fullmatch(r"/v1/agent/service/deregister/(.+)", path)
        if m:
            sid = urllib.parse.unquote(m.group(1))
            with st.cond:
                s = st.services.get(sid)
                if s is None:
                    return self.reply(404, 'Unknown service ID "%s". Ensure that the service ID is passed, not the service name.' % sid)
                if not self.may(rights, "service:write", s["Service"]):
                    return self.denied(rights, "service:write", s["Service"])
                self.remove_service(sid)
            return self.reply(200, b"")
        if path == "/v1/agent/check/register":
            b = lower_keys(body) if isinstance(body, dict) else {}
            with st.cond:
                sid = b.get("serviceid") or ""
                s = st.services.get(sid)
                if sid and s is None:
                    return self.reply(400, 'ServiceID "%s" does not exist' % sid)
                if s is not None and not self.may(rights, "service:write", s["Service"]):
                    return self.denied(rights, "service:write", s["Service"])
                problem = self.add_check(b, s)
                if problem:
                    return self.reply(400, problem)
                st.bump()
            return self.reply(200, b"")
        m = re.fullmatch(r"/v1/agent/check/deregister/(.+)", path)
        if m:
            cid = urllib.parse.unquote(m.group(1))
            with st.cond:
                if cid not in st.checks:
                    return self.reply(404, 'Unknown check ID "%s". Ensure that the check ID is passed, not the check name.' % cid)
                del st.checks[cid]
                st.bump()
            return self.reply(200, b"")
        m = re.fullmatch(r"/v1/agent/check/(pass|warn|fail|update)/(.+)", path)
        if m:
            verb, cid = m.group(1), urllib.parse.unquote(m.group(2))
            if verb == "update":
                b = lower_keys(body) if isinstance(body, dict) else {}
                status, output = (b.get("status") or ""), (b.get("output") or "")
                if status not in ("passing", "warning", "critical"):
                    return self.reply(400, "Invalid status")
            else:
                status = {"pass": "passing", "warn": "warning", "fail": "critical"}[verb]
                output = q.get("note", [""])[0]
            with st.cond:
                c = st.checks.get(cid)
                if c is None:
                    return self.reply(404, 'Unknown check ID "%s". Ensure that the check ID is passed, not the check name.' % cid)
                s = st.services.get(c["ServiceID"])
                if s is not None and not self.may(rights, "service:write", s["Service"]):
                    return self.denied(rights, "service:write", s["Service"])
                if c["Type"] != "ttl":
                    return self.reply(500, 'CheckID "%s" does not have associated TTL' % cid)
                c["_deadline"] = time.monotonic() + c["_ttl"]
                self.set_status(c, status, output)
            return self.reply(200, b"")
        return self.reply(404, "404 page not found")

    def do_POST(self):
        return self.reply(405, "method POST not allowed")

    def do_DELETE(self):
        return self.reply(405, "method DELETE not allowed")

    # -- state changes (hold cond) --
    def set_status(self, c, status, output):
        set_status(self.state, c, status, output)

    def remove_service(self, sid):
        remove_service(self.state, sid)

    def add_check(self, b, s, default_id=None):
        """Adds one check (lower-cased keys) to service s (or the node); returns a problem or None."""
        st = self.state
        ttl = parse_duration(b.get("ttl")) if b.get("ttl") else None
        grpc_target = b.get("grpc")
        if ttl is None and not grpc_target:
            if b.get("ttl"):
                return "Invalid check: TTL must be > 0 for TTL checks"
            return "Invalid check: must be a TTL or GRPC check (the stand-in supports these)"
        cid = b.get("checkid") or b.get("id") or default_id or ("service:%s" % s["ID"] if s else (b.get("name") or "check"))
        name = b.get("name") or ("Service '%s' check" % s["Service"] if s else cid)
        after = parse_duration(b.get("deregistercriticalserviceafter") or "") if b.get("deregistercriticalserviceafter") else None
        c = {"Node": NODE, "CheckID": cid, "Name": name, "Status": b.get("status") or "critical", "Notes": b.get("notes") or "",
             "Output": "", "ServiceID": s["ID"] if s else "", "ServiceName": s["Service"] if s else "",
             "ServiceTags": list(s["Tags"]) if s else [], "Type": "ttl" if ttl is not None else "grpc",
             "CreateIndex": st.index + 1, "ModifyIndex": st.index + 1,
             "_ttl": ttl, "_deadline": time.monotonic() + ttl if ttl else None,
             "_critical_since": time.monotonic(), "_deregister_after": max(60.0, after) if after else None}
        if grpc_target:
            interval = parse_duration(b.get("interval") or "")
            if not interval or interval <= 0:
                return "Invalid check: interval must be > 0 for GRPC checks"
            c["_grpc"] = grpc_target
            c["_interval"] = interval
            c["_timeout"] = parse_duration(b.get("timeout") or "") or 10.0
            c["_tls"] = bool(b.get("grpcusetls"))
            old = st.checks.get(cid)
            if old:
                old["_stop"] = True
            st.checks[cid] = c
            threading.Thread(target=grpc_checker, args=(st, c), daemon=True).start()
        else:
            st.checks[cid] = c
        return None

    def register_service(self, b, rights):
        st = self.state
        name = b.get("name")
        if not name:
            return self.reply(400, "Missing service name")
        if not self.may(rights, "service:write", name):
            return self.denied(rights, "service:write", name)
        port = b.get("port", 0)
        if not isinstance(port, int) or port < 0 or port > 65535:
            return self.reply(400, "Request decode failed: invalid port")
        sid = b.get("id") or name
        tagged = {}
        for k, v in (b.get("taggedaddresses") or {}).items():
            if isinstance(v, dict):
                tagged[k] = {"Address": v.get("address", ""), "Port": v.get("port", 0)}
        s = {"ID": sid, "Service": name, "Tags": list(b.get("tags") or []), "Address": b.get("address") or "",
             "Meta": dict(b.get("meta") or {}), "Port": port, "TaggedAddresses": tagged,
             "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": bool(b.get("enabletagoverride")),
             "Datacenter": DC}
        checks = []
        if isinstance(b.get("check"), dict) and b["check"]:
            checks.append(b["check"])
        checks += [c for c in (b.get("checks") or []) if isinstance(c, dict)]
        if not checks and (b.get("ttl") or b.get("grpc")):  # python-consul's flat form
            checks.append({k: b[k] for k in ("ttl", "grpc", "interval", "timeout") if b.get(k)})
        with st.cond:
            old = st.services.get(sid)
            idx = st.index + 1
            s["CreateIndex"] = old["CreateIndex"] if old else idx
            s["ModifyIndex"] = idx
            if old is None or q_replace(self):
                for cid in [cid for cid, c in st.checks.items() if c["ServiceID"] == sid]:
                    st.checks[cid]["_stop"] = True
                    del st.checks[cid]
            st.services[sid] = s
            for i, c in enumerate(checks):
                problem = self.add_check(c, s, default_id=("service:%s" % sid) if len(checks) == 1 else ("service:%s:%d" % (sid, i + 1)))
                if problem:
                    del st.services[sid]
                    return self.reply(400, problem)
            st.bump()
            st.table_index = st.index
        return self.reply(200, b"")


def set_status(st, c, status, output):
    """A check's new status (hold st.cond); an unchanged one raises no index."""
    if c["Status"] != status or c["Output"] != output:
        if c["Status"] != status:
            c["_critical_since"] = time.monotonic() if status == "critical" else None
        c["Status"], c["Output"] = status, output
        c["ModifyIndex"] = st.bump()


def remove_service(st, sid):
    s = st.services.pop(sid)
    for cid in [cid for cid, c in st.checks.items() if c["ServiceID"] == sid]:
        st.checks[cid]["_stop"] = True
        del st.checks[cid]
    st.tombstones[s["Service"]] = st.bump()
    st.table_index = st.index


def q_replace(handler):
    _, q = handler.split()
    return "replace-existing-checks" in q


def grpc_checker(st, c):
    try:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc
    except ImportError:
        with st.cond:
            set_status(st, c, "critical", "gRPC checks need grpcio in the stand-in's Python")
        return
    target = c["_grpc"]
    service = ""
    if "/" in target:
        target, service = target.split("/", 1)
    channel = None
    while not c.get("_stop"):
        try:
            if channel is None:
                channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if c["_tls"] else grpc.insecure_channel(target)
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=c["_timeout"])
            if resp.status == health_pb2.HealthCheckResponse.SERVING:
                status, output = "passing", "gRPC check %s: success" % c["_grpc"]
            else:
                status, output = "critical", "gRPC check %s: failed with status %s" % (
                    c["_grpc"], health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))
        except Exception as e:  # grpc.RpcError and friends
            code = getattr(e, "code", lambda: None)()
            status, output = "critical", "gRPC check %s: failed: %s" % (c["_grpc"], code.name if code else type(e).__name__)
            if channel is not None:
                channel.close()
                channel = None
        with st.cond:
            if c.get("_stop"):
                break
            set_status(st, c, status, output)
        time.sleep(c["_interval"])
    if channel is not None:
        channel.close()


def ticker(st):
    """TTL expiry and DeregisterCriticalServiceAfter."""
    while True:
        time.sleep(0.1)
        now = time.monotonic()
        with st.cond:
            for c in list(st.checks.values()):
                if c["Type"] == "ttl" and c["_deadline"] and now > c["_deadline"] and c["Status"] != "critical":
                    set_status(st, c, "critical", "TTL expired")
            for c in list(st.checks.values()):
                after, since = c.get("_deregister_after"), c.get("_critical_since")
                if after and since and c["Status"] == "critical" and now - since >= after and c["ServiceID"] in st.services:
                    remove_service(st, c["ServiceID"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--index-start", type=int, default=10)
    ap.add_argument("--acl")
    a = ap.parse_args()
    acl = None
    if a.acl:
        with open(a.acl) as f:
            acl = json.load(f)
    st = State(a.index_start, acl)
    Handler.state = st
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((a.host, a.port), Handler)
    threading.Thread(target=ticker, args=(st,), daemon=True).start()
    host, port = server.server_address[:2]
    print("listening %s:%d" % (host, port), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
