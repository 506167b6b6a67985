#!/usr/bin/python3
"""A WebSocket echo server for ferry's ws:// upstream tests (Debian's python3-websockets).

Echoes every message with its type (text stays text, binary stays binary), chooses the first
subprotocol the client offers, and answers the text message "whoami" with a JSON text
{"path": request path and query, "trail": the X-Ferry-Trail header}. The closing handshake
echoes the client's close code (the library answers a Close with the same code). Runs until
killed.
"""

import argparse
import asyncio
import json

import websockets


async def serve(args):
    async def handler(ws, path=None):
        try:
            async for message in ws:
                if message == "whoami":
                    await ws.send(json.dumps({
                        "path": ws.path,
                        "trail": ws.request_headers.get("X-Ferry-Trail", ""),
                    }))
                else:
                    await ws.send(message)
        except websockets.exceptions.ConnectionClosed:
            pass

    async with websockets.serve(
        handler,
        args.host,
        args.port,
        max_size=None,
        ping_interval=None,
        subprotocols=["any"],
        select_subprotocol=lambda offered, supported: offered[0] if offered else None,
    ):
        print("ws_echo_server: listening on %s:%d" % (args.host, args.port), flush=True)
        await asyncio.Future()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    asyncio.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
