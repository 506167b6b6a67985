#!/usr/bin/python3
"""A stock gRPC client (Debian's python3-grpcio) at a terminator's --tunnel-transport=grpc port.

Calls a method other than the tunnel's and expects UNIMPLEMENTED with a reason, as any gRPC
client at the wrong address should hear. Exits 0 when it did, 1 with the reason otherwise.

  grpc_tunnel_probe.py --port P [--method /package.Service/Method]
"""
import argparse
import sys

import grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--method", default="/grpc.health.v1.Health/Check")
    args = ap.parse_args()
    with grpc.insecure_channel("127.0.0.1:%d" % args.port) as channel:
        call = channel.unary_unary(args.method, request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        try:
            call(b"", timeout=20)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNIMPLEMENTED or not e.details():
                print("FAIL: %s %r, expected UNIMPLEMENTED" % (e.code(), e.details()),
                      file=sys.stderr)
                return 1
            print("%s: %s %s" % (args.method, e.code(), e.details()))
            return 0
    print("FAIL: the call succeeded", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
