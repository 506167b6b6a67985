#!/usr/bin/env python3
"""Pre-authentication cost of a ferry terminator (the figures of docs/security.md).

Starts a terminator with mutual TLS on loopback, then holds N connections that never
authenticate, in three shapes: silent TCP, a 5-byte partial record, and a real TLS 1.3
ClientHello followed by silence. Reports the terminator's resident memory per held connection
(VmRSS delta / N, with a --max-pending-tunnels large enough to keep them all), then, with the
default budget, how long a new initiator takes to become ready while the port is held.

  bench/preauth.py [--build build] [--connections 2000]
"""
import argparse
import os
import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except Exception as e:  # noqa: BLE001 - a probe that fails is just "not yet"
        return getattr(e, "code", 0), ""


def metric(port, name):
    _, body = get(port, "/metrics")
    return sum(int(line.split()[-1]) for line in body.splitlines() if line.startswith(name + "{"))


def terminator(ferry, pki, extra):
    tunnel, admin, upstream = free_port(), free_port(), free_port()
    args = [ferry, "terminator", "--listen-tunnel", f"127.0.0.1:{tunnel}", "--upstream",
            f"127.0.0.1:{upstream}", "--admin", f"127.0.0.1:{admin}", "--shards", "1",
            "--cpus", "none", "--tls-cert", f"{pki}/terminator.crt", "--tls-key",
            f"{pki}/terminator.key", "--tls-ca", f"{pki}/ca.crt", "--log-level", "error"] + extra
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if get(admin, "/health")[0] == 200:
            return p, tunnel, admin
        time.sleep(0.05)
    p.kill()
    raise SystemExit("terminator did not start")


def hold(port, n, payload):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if payload:
            s.sendall(payload)
        socks.append(s)
    return socks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--connections", type=int, default=2000)
    a = ap.parse_args()
    ferry = f"{a.build}/src/cli/ferry"
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    hello = (ROOT / "tests/fuzz/corpus/tls_handshake/client_hello").read_bytes()[1:]
    with tempfile.TemporaryDirectory() as tmp:
        pki = f"{tmp}/pki"
        subprocess.run([str(ROOT / "tools/gen-certs.sh"), pki], check=True)
        n = a.connections
        for shape, payload in (("silent TCP", b""), ("5-byte partial record", b"\x16\x03\x01\x02\x00"),
                               ("ClientHello, then silence", hello)):
            p, tunnel, admin = terminator(ferry, pki, ["--max-pending-tunnels", str(n + 100),
                                                       "--handshake-timeout", "10m"])
            time.sleep(0.3)
            before = rss_kib(p.pid)
            socks = hold(tunnel, n, payload)
            time.sleep(1.0)
            after = rss_kib(p.pid)
            pending = metric(admin, "ferry_tunnel_pending")
            print(f"{shape:28s}: {n} held ({pending} pending), terminator RSS {before} -> {after} KiB,"
                  f" {(after - before) / n:.2f} KiB per connection")
            for s in socks:
                s.close()
            p.kill()
            p.wait()
        # Lock-out: the default budget, the port held by many silent connections.
        p, tunnel, admin = terminator(ferry, pki, [])
        socks = hold(tunnel, n, b"")
        time.sleep(0.5)
        iadmin, listen = free_port(), free_port()
        start = time.monotonic()
        i = subprocess.Popen([ferry, "initiator", "--listen", f"127.0.0.1:{listen}", "--peer",
                              f"127.0.0.1:{tunnel}", "--admin", f"127.0.0.1:{iadmin}", "--shards",
                              "1", "--cpus", "none", "--tls-cert", f"{pki}/initiator.crt",
                              "--tls-key", f"{pki}/initiator.key", "--tls-ca", f"{pki}/ca.crt",
                              "--log-level", "error"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ready = None
        while time.monotonic() - start < 30:
            if get(iadmin, "/ready")[0] == 200:
                ready = time.monotonic() - start
                break
            time.sleep(0.01)
        evicted = metric(admin, "ferry_pending_evicted_total")
        print(f"new initiator ready after {ready * 1000:.0f} ms with {n} silent connections held"
              f" ({evicted} evicted)" if ready is not None else "new initiator NOT ready in 30 s")
        i.kill()
        for s in socks:
            s.close()
        p.kill()


if __name__ == "__main__":
    main()
