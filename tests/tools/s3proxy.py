#!/usr/bin/env python3
"""Fault-injecting HTTP proxy for S3 tests.

Forwards every request to an upstream S3 endpoint (Ceph RGW in the test
harness) unchanged, Host header included, so SigV4 signatures stay valid, and
injects faults by rule:

    s3proxy.py --listen 127.0.0.1:PORT --upstream http://127.0.0.1:7480 \
               --rules RULES.json --log LOG.jsonl [--pidfile F]

RULES.json is a list of rules; each matches requests by method and a
substring of the path+query, counts its matches, and acts on the listed
occurrences (1-based) or on every match when "nth" is absent:

    [{"method": "PUT", "contains": "partNumber=2", "nth": [1, 2],
      "action": "status", "status": 503, "code": "SlowDown"},
     {"method": "PUT", "contains": "partNumber=", "nth": [3], "action": "reset"},
     {"method": "PUT", "contains": "partNumber=", "nth": [5], "action": "stall",
      "seconds": 30}]

A rule may also carry "regex", a Python regular expression the path+query
must match (e.g. "[?&]partNumber=2(&|$)"), "range_regex", one the Range
header must match, and "range_min", the fewest bytes that range must span.

actions: "status" (answer with an S3 XML error, body Code), "reset" (read
half the request body, then reset the connection), "stall" (read the request,
answer nothing for "seconds"), "corrupt" (forward, then flip 64 bytes at
fraction "at" (default 0.25) of the answer's body: bit rot that keeps the
length), "body" (answer "status" (default 200) with the rule's "body", an
XML document: a canned listing page, as a faulty server would send).  Every request is logged as one JSON line
(method, path, status or action, its Range header if any, and for a
forwarded answer the body bytes sent) so tests can count retries, reads
and bytes downloaded.  Rules are
re-read when the file changes.  Loopback only; stops on SIGTERM.
"""
import argparse
import http.client
import http.server
import json
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
       "te", "trailer", "upgrade"}


class State:
    def __init__(self, rules_path, log_path, upstream):
        self.rules_path = rules_path
        self.log_path = log_path
        self.upstream = urllib.parse.urlsplit(upstream)
        self.lock = threading.Lock()
        self.rules = []
        self.counts = []
        self.mtime = None

    def reload(self):
        if not self.rules_path:
            return
        try:
            m = os.stat(self.rules_path).st_mtime_ns
        except FileNotFoundError:
            self.rules, self.counts, self.mtime = [], [], None
            return
        if m != self.mtime:
            with open(self.rules_path) as f:
                self.rules = json.load(f)
            self.counts = [0] * len(self.rules)
            self.mtime = m

    def match(self, method, target, rng=None):
        with self.lock:
            self.reload()
            hit = None
            # every matching rule counts this request, the first due one acts
            for i, r in enumerate(self.rules):
                if r.get("method", method) != method:
                    continue
                if r.get("contains", "") not in target:
                    continue
                if "regex" in r and not re.search(r["regex"], target):
                    continue
                if "range_regex" in r and not re.search(r["range_regex"], rng or ""):
                    continue
                if "range_min" in r:
                    m = re.match(r"bytes=(\d+)-(\d+)$", rng or "")
                    if not m or int(m.group(2)) - int(m.group(1)) + 1 < r["range_min"]:
                        continue
                self.counts[i] += 1
                nth = r.get("nth")
                if hit is None and (nth is None or self.counts[i] in nth):
                    hit = r
            return hit

    def log(self, **kw):
        if not self.log_path:
            return
        for k in ("range", "action"):
            if kw.get(k) is None:
                kw.pop(k, None)
        kw["t"] = round(time.time(), 3)
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps(kw) + "\n")


def make_handler(state):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def _body(self, limit=None):
            n = int(self.headers.get("Content-Length") or 0)
            if limit is not None:
                n = min(n, limit)
            chunks, left = [], n
            while left > 0:
                b = self.rfile.read(min(left, 1 << 20))
                if not b:
                    break
                chunks.append(b)
                left -= len(b)
            return b"".join(chunks)

        def _error(self, rule):
            code = rule.get("code", "InternalError")
            status = int(rule.get("status", 500))
            body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code>"
                    "<Message>injected by s3proxy</Message></Error>" % code).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _canned(self, rule):
            body = rule.get("body", "").encode()
            self.send_response(int(rule.get("status", 200)))
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _reset(self):
            n = int(self.headers.get("Content-Length") or 0)
            self._body(limit=n // 2)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def _forward(self, body, corrupt_at=None):
            up = state.upstream
            conn = http.client.HTTPConnection(up.hostname, up.port or 80, timeout=120)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if corrupt_at is not None and len(data) > 64:   # bit rot: same length
                at = min(int(len(data) * corrupt_at), len(data) - 64)
                data = data[:at] + bytes(b ^ 0xA5 for b in data[at:at + 64]) + data[at + 64:]
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() in HOP or k.lower() == "content-length":
                    continue
                self.send_header(k, v)
            if self.command == "HEAD":   # no body: pass the object's length on
                self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.sent = 0
            if self.command != "HEAD":
                self.wfile.write(data)
                self.sent = len(data)
            conn.close()
            return resp.status

        def _handle(self):
            rule = state.match(self.command, self.path, self.headers.get("Range"))
            action = rule.get("action") if rule else None
            if action == "reset":
                state.log(method=self.command, path=self.path, action="reset",
                          range=self.headers.get("Range"))
                self._reset()
                return
            body = self._body()
            if action == "stall":
                state.log(method=self.command, path=self.path, action="stall",
                          range=self.headers.get("Range"))
                time.sleep(float(rule.get("seconds", 30)))
                self.close_connection = True
                return
            if action == "status":
                state.log(method=self.command, path=self.path, action="status",
                          status=int(rule.get("status", 500)),
                          range=self.headers.get("Range"))
                self._error(rule)
                return
            if action == "body":
                state.log(method=self.command, path=self.path, action="body",
                          status=int(rule.get("status", 200)))
                self._canned(rule)
                return
            try:
                at = float(rule.get("at", 0.25)) if action == "corrupt" else None
                status = self._forward(body, corrupt_at=at)
            except OSError as e:
                state.log(method=self.command, path=self.path, action="upstream-error",
                          error=str(e))
                self._error({"status": 502, "code": "BadGateway"})
                return
            state.log(method=self.command, path=self.path, status=status,
                      range=self.headers.get("Range"), bytes=self.sent,
                      action="corrupt" if action == "corrupt" else None)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--rules")
    ap.add_argument("--log")
    ap.add_argument("--pidfile")
    ap.add_argument("--portfile", help="write the port listened on here")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("s3proxy: listens on loopback only")
    state = State(a.rules, a.log, a.upstream)
    srv = http.server.ThreadingHTTPServer((host, int(port)), make_handler(state))
    srv.daemon_threads = True
    if a.portfile:
        with open(a.portfile, "w") as f:
            f.write(str(srv.server_address[1]))
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    srv.serve_forever()


if __name__ == "__main__":
    main()
