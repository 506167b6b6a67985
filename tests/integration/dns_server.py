#!/usr/bin/python3
"""A tiny authoritative DNS server for ferry's --peer-dns tests (stdlib only, UDP).

Answers A queries for any name with the IPv4 addresses listed in --records (one per line, the
file re-read on every query, so a test changes the answer by rewriting it), AAAA queries with
no records (NOERROR), TTL 1. Runs until killed.

  dns_server.py --port 5353 --records FILE
"""
import argparse
import socket
import struct


def parse_question(packet):
    i = 12
    labels = []
    while packet[i] != 0:
        n = packet[i]
        labels.append(packet[i + 1:i + 1 + n])
        i += 1 + n
    qtype, qclass = struct.unpack("!HH", packet[i + 1:i + 5])
    return packet[12:i + 5], qtype, qclass


def answer(packet, records_file):
    qid, flags = struct.unpack("!HH", packet[:4])
    question, qtype, _ = parse_question(packet)
    addresses = []
    if qtype == 1:  # A
        try:
            with open(records_file) as f:
                addresses = [line.strip() for line in f if line.strip()]
        except OSError:
            addresses = []
    rd = flags & 0x0100
    header = struct.pack("!HHHHHH", qid, 0x8400 | rd, 1, len(addresses), 0, 0)
    body = question
    for a in addresses:
        # Name: a pointer to the question's name at offset 12.
        body += struct.pack("!HHHIH", 0xC00C, 1, 1, 1, 4) + socket.inet_aton(a)
    return header + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--records", required=True)
    args = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", args.port))
    while True:
        packet, peer = s.recvfrom(4096)
        try:
            s.sendto(answer(packet, args.records), peer)
        except (IndexError, struct.error):
            pass  # not a query we understand: no answer, like a lost packet


if __name__ == "__main__":
    main()
