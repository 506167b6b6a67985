#!/usr/bin/python3
"""Routing across network namespaces: one initiator in namespace A, three terminators in
namespaces B1, B2 and B3, each joined to A by its own veth link (10.77.N.1 <-> 10.77.N.2), as
three clusters' LoadBalancer addresses would be. WebSocket clients in A carry an X-Routing-Key;
the terminators' built-in sink answers with the trail, which names the terminator.

Checks: keys stick to their terminator; terminator 2 killed -> only its keys move, and the open
connections to the other two carry on; terminator 2 back -> its keys come back for new streams.
Every namespace and process it made is removed on the way out, failures included. Skips (77)
where namespaces cannot be made.

  route_netns_test.py FERRY_BIN
"""
import asyncio
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

CLONE_NEWNET = 0x40000000
TAG = "rt%d" % os.getpid()
NS_A = TAG + "-a"
NS_B = [TAG + "-b%d" % i for i in (1, 2, 3)]
KEYS = ["tenant-%d" % k for k in range(30)]
PORT = 7443

procs = {}
made = []
logdir = tempfile.mkdtemp(prefix="ferry-route-netns-")


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def cleanup():
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()
    for ns in made:
        subprocess.run(["ip", "netns", "delete", ns], stderr=subprocess.DEVNULL)


def fail(why):
    print("FAIL: " + why, file=sys.stderr)
    for name in sorted(os.listdir(logdir)):
        with open(os.path.join(logdir, name)) as f:
            print("---- %s\n%s" % (name, "".join(f.readlines()[-20:])), file=sys.stderr)
    cleanup()
    sys.exit(1)


def start(name, ns, args):
    log = open(os.path.join(logdir, name + ".log"), "w")
    procs[name] = subprocess.Popen(["ip", "netns", "exec", ns] + args, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)


def start_terminator(ferry, i):
    start("terminator-%d" % i, NS_B[i - 1], [
        ferry, "terminator", "--listen-tunnel", "10.77.%d.2:%d" % (i, PORT), "--upstream",
        "127.0.0.1:1", "--admin", "127.0.0.1:9901", "--shards", "1", "--cpus", "none",
        "--node-name", "netns-term-%d" % i, "--tunnel-transport", "plain"])


def enter(ns):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + ns)
    finally:
        os.close(fd)


async def ws_open(key):
    import websockets.client as wsc
    return await wsc.connect("ws://127.0.0.1:9001/", extra_headers={"X-Routing-Key": key},
                             open_timeout=10, close_timeout=2)


async def ask(ws):
    await ws.send("hi")
    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return reply["trail"][-1]


async def route(key):
    try:
        ws = await ws_open(key)
        try:
            return await ask(ws)
        finally:
            await ws.close()
    except Exception as e:  # a refused or reset connection: no terminator answered
        return "none (%s)" % type(e).__name__


async def routes():
    return {k: await route(k) for k in KEYS}


def metric(name):
    out = subprocess.run(["curl", "-s", "--max-time", "2", "http://127.0.0.1:9900/metrics"],
                         capture_output=True, text=True).stdout
    return sum(float(line.split()[-1]) for line in out.splitlines()
               if line.startswith(name + "{"))


def wait_tunnels(n, limit=30):
    deadline = time.time() + limit
    while time.time() < deadline:
        if metric("ferry_tunnel_up") == n:
            return True
        time.sleep(0.2)
    return False


async def scenario():
    before = await routes()
    terms = sorted(set(before.values()))
    if terms != ["netns-term-1", "netns-term-2", "netns-term-3"]:
        fail("keys did not spread over the three terminators: %r" % before)
    if await routes() != before:
        fail("keys did not stick to their terminator")
    print("keys: %s" % json.dumps({t: sum(1 for v in before.values() if v == t) for t in terms}))
    # One open connection to each surviving terminator.
    held = []
    for t in ("netns-term-1", "netns-term-3"):
        key = next(k for k, v in before.items() if v == t)
        ws = await ws_open(key)
        if await ask(ws) != t:
            fail("held connection for %s went elsewhere" % key)
        held.append((ws, t))

    procs["terminator-2"].send_signal(signal.SIGKILL)
    procs["terminator-2"].wait()
    if not wait_tunnels(2 * 2):
        fail("the initiator still counts terminator 2's tunnels")
    during = await routes()
    for k, t in before.items():
        if t == "netns-term-2":
            if during[k] not in ("netns-term-1", "netns-term-3"):
                fail("%s (terminator 2's) went to %r" % (k, during[k]))
        elif during[k] != t:
            fail("%s moved from %s to %s though its terminator is up" % (k, t, during[k]))
    for ws, t in held:
        if await ask(ws) != t:
            fail("an open connection to %s did not carry on" % t)
        await ws.close()
    print("terminator 2 killed: only its %d keys moved; open connections to the others carried on"
          % sum(1 for t in before.values() if t == "netns-term-2"))

    start_terminator(sys.argv[1], 2)
    if not wait_tunnels(3 * 2):
        fail("terminator 2 did not come back")
    if await routes() != before:
        fail("terminator 2's keys did not come back")
    print("terminator 2 back: its keys came back")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ferry = sys.argv[1]
    probe = TAG + "-probe"
    if subprocess.run(["ip", "netns", "add", probe], stderr=subprocess.DEVNULL).returncode != 0:
        print("cannot create network namespaces here (needs root): skipped")
        return 77
    subprocess.run(["ip", "netns", "delete", probe])
    try:
        import websockets  # noqa: F401
    except ImportError:
        print("python3-websockets is not installed: skipped")
        return 77
    try:
        for ns in [NS_A] + NS_B:
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for i, ns in enumerate(NS_B, start=1):
            sh("ip", "link", "add", "wan%d" % i, "netns", NS_A, "type", "veth", "peer", "name",
               "wan0", "netns", ns)
            sh("ip", "-n", NS_A, "addr", "add", "10.77.%d.1/30" % i, "dev", "wan%d" % i)
            sh("ip", "-n", ns, "addr", "add", "10.77.%d.2/30" % i, "dev", "wan0")
            sh("ip", "-n", NS_A, "link", "set", "wan%d" % i, "up")
            sh("ip", "-n", ns, "link", "set", "wan0", "up")
        for i in (1, 2, 3):
            start_terminator(ferry, i)
        peers = []
        for i in (1, 2, 3):
            peers += ["--peer", "10.77.%d.2:%d" % (i, PORT)]
        start("initiator", NS_A, [
            ferry, "initiator", "--listen", "ws://127.0.0.1:9001/", "--admin", "127.0.0.1:9900",
            "--shards", "2", "--cpus", "none", "--node-name", "netns-init", "--auto-trigger", "0",
            "--tunnel-transport", "plain", "--connect-timeout", "2s"] + peers)
        enter(NS_A)  # from here on this process's sockets (curl's too) live in cluster A
        if not wait_tunnels(3 * 2):
            fail("the initiator did not get a tunnel to each terminator from each shard")
        asyncio.run(scenario())
    except subprocess.CalledProcessError as e:
        fail("%s: %s" % (" ".join(e.cmd), e.stderr.decode(errors="replace").strip()))
    finally:
        cleanup()  # every path out, failures and exceptions included
    print("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
