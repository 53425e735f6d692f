#!/usr/bin/env python3
"""Counts the Kafka requests the broker received, by API and by client connection, from a
packet capture of the broker's port. Shows where the broker's work comes from under a load
(the engine's clients, the broker's own inter-broker requests).

    tcpdump -i lo -s 0 -w /tmp/kafka.pcap 'tcp dst port 19092' &   # needs capture rights
    ... run the load, stop tcpdump after SECONDS ...
    tests/bench/routes/requests.py /tmp/kafka.pcap SECONDS

Only what clients send is needed (dst port). Each connection's bytes are read in capture
order as a stream of Kafka request frames (length, api key, version, correlation id, client
id); loopback captures do not reorder, and a capture that starts inside a frame is resynced
at the first plausible frame header. Requires a capture without drops (tcpdump says).
"""
import collections
import struct
import sys

API = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
       9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
       13: "LeaveGroup", 14: "SyncGroup", 18: "ApiVersions", 19: "CreateTopics",
       20: "DeleteTopics", 22: "InitProducerId", 24: "AddPartitionsToTxn",
       25: "AddOffsetsToTxn", 26: "EndTxn", 27: "WriteTxnMarkers", 28: "TxnOffsetCommit",
       32: "DescribeConfigs", 60: "DescribeCluster"}


def flows(path):
    """Client-to-broker TCP payload per (source port, destination port), in capture order."""
    out = collections.defaultdict(bytearray)
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24:
            sys.exit(f"{path}: not a pcap file")
        magic = struct.unpack("<I", header[:4])[0]
        if magic not in (0xA1B2C3D4, 0xA1B23C4D):
            sys.exit(f"{path}: not a little-endian pcap file (pcapng is not read)")
        link = struct.unpack("<I", header[20:24])[0]
        skip = {0: 4, 1: 14, 113: 16, 276: 20}.get(link)
        if skip is None:
            sys.exit(f"{path}: link type {link} is not read")
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                break
            incl = struct.unpack("<IIII", rec)[2]
            frame = f.read(incl)
            ip = frame[skip:]
            if len(ip) < 20:
                continue
            if ip[0] >> 4 == 4:
                tcp = ip[(ip[0] & 15) * 4:]
            elif ip[0] >> 4 == 6:
                tcp = ip[40:]  # no extension headers on loopback TCP
            else:
                continue
            if len(tcp) < 20:
                continue
            sport, dport = struct.unpack(">HH", tcp[:4])
            payload = tcp[(tcp[12] >> 4) * 4:]
            if payload:
                out[(sport, dport)] += payload
    return out


def requests(buf):
    """(api name, frame length, client id) of each request frame in one connection's bytes."""
    i = 0
    while i + 14 <= len(buf):
        length, key, _version = struct.unpack(">iHH", buf[i:i + 8])
        if length < 10 or length > 100_000_000 or key > 80:
            i += 1  # not a frame start: resync
            continue
        if i + 4 + length > len(buf):
            break  # cut off by the end of the capture
        n = struct.unpack(">h", buf[i + 12:i + 14])[0]
        client = buf[i + 14:i + 14 + max(n, 0)].decode("latin1")
        yield API.get(key, f"api{key}"), length, client
        i += 4 + length


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: requests.py CAPTURE.pcap SECONDS")
    secs = float(sys.argv[2])
    by_api = collections.Counter()
    conns = []
    for (sport, _), buf in flows(sys.argv[1]).items():
        counts, sizes, clients = collections.Counter(), collections.Counter(), set()
        for api, length, client in requests(buf):
            counts[api] += 1
            sizes[api] += length
            clients.add(client)
        by_api.update(counts)
        conns.append((sum(counts.values()), sport, counts, sizes, clients))
    total = sum(by_api.values())
    print(f"requests: {total / secs:.0f}/s")
    for api, n in by_api.most_common():
        print(f"  {api:20s} {n / secs:8.0f}/s")
    print("busiest connections (source port: requests/s by API, mean request bytes):")
    for n, sport, counts, sizes, clients in sorted(conns, reverse=True)[:15]:
        if not n:
            continue
        parts = " ".join(f"{a}={c / secs:.0f} ({sizes[a] // c} B)" for a, c in counts.most_common(4))
        print(f"  {sport:5d} [{','.join(sorted(clients))[:40]}] {parts}")


if __name__ == "__main__":
    main()
