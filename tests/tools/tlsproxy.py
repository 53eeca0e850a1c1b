#!/usr/bin/env python3
"""TLS-terminating TCP proxy for TLS tests.

Serves a given certificate on loopback and forwards the decrypted bytes to
an upstream plain-HTTP endpoint (a zone of the RGW harness), so the server a
client reaches is real RGW and only the certificate differs:

    tlsproxy.py --cert expired.pem --key expired.key \
                --upstream 127.0.0.1:7480 --portfile F [--log LOG]

Listens on 127.0.0.1 (or --listen ADDR) on a free port (written to the
port file once it accepts) and stops on SIGTERM.  With --plain it serves no
TLS at all: a plain forwarder, e.g. on a non-loopback address of this host
to stand for an S3 endpoint on another host.  Each connection's handshake result is
logged, one line per connection ("ok" or the TLS error the server saw), so
a test can tell a client that refused the certificate from one that never
came.
"""
import argparse
import os
import signal
import socket
import ssl
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn, ctx, upstream, log):
    try:
        tls = ctx.wrap_socket(conn, server_side=True) if ctx else conn
    except (ssl.SSLError, OSError) as e:
        log("handshake failed: %s" % e)
        conn.close()
        return
    log("ok")
    try:
        up = socket.create_connection(upstream, timeout=10)
        up.settimeout(None)
    except OSError as e:
        log("upstream: %s" % e)
        tls.close()
        return
    t = threading.Thread(target=pump, args=(up, tls), daemon=True)
    t.start()
    pump(tls, up)
    t.join(timeout=30)
    tls.close()
    up.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--upstream", required=True, help="HOST:PORT (plain)")
    ap.add_argument("--portfile", required=True)
    ap.add_argument("--log")
    a = ap.parse_args()
    host, _, port = a.upstream.rpartition(":")
    upstream = (host, int(port))
    ctx = None
    if not a.plain:
        if not a.cert or not a.key:
            ap.error("--cert and --key, or --plain")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
    lock = threading.Lock()

    def log(msg):
        if a.log:
            with lock, open(a.log, "a") as f:
                f.write(msg + "\n")

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.listen, 0))
    srv.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    tmp = a.portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.getsockname()[1])
    os.rename(tmp, a.portfile)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, ctx, upstream, log),
                         daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
