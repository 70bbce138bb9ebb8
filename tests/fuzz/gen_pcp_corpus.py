#!/usr/bin/env python3
"""Generate the seed corpus for fuzz_pcp (tests/fuzz/corpus/pcp/).

Valid MAP/PEER/ANNOUNCE requests and responses with their options, one
file per malformed case of spec/pcp.md sections 1.4 and 1.5, truncated
messages. Layouts follow RFC 6887 sections 7, 11.1, 12.1, 13, RFC 7220,
RFC 7843 and RFC 7753. Standard library only; output is deterministic.

    python3 tests/fuzz/gen_pcp_corpus.py [OUTDIR]
"""
import ipaddress
import os
import struct
import sys

VERSION = 2
OP_ANNOUNCE, OP_MAP, OP_PEER, OP_AUTH = 0, 1, 2, 3
OPT_THIRD_PARTY, OPT_PREFER_FAILURE, OPT_FILTER = 1, 2, 3
OPT_AUTH_TAG, OPT_THIRD_PARTY_ID = 5, 13
OPT_DESCRIPTION, OPT_PREFIX64, OPT_PORT_SET = 128, 129, 130
TCP, UDP = 6, 17
NONCE = bytes(range(1, 13))


def addr(text):
    """128-bit PCP address: IPv4 as IPv4-mapped (RFC 6887 section 5)."""
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return bytes(10) + b"\xff\xff" + ip.packed
    return ip.packed


CLIENT = addr("192.168.1.2")
THIRD = addr("192.168.1.50")
ANY4 = addr("0.0.0.0")


def opt(code, data=b"", length=None):
    """Option TLV (section 7.3), padded to 4; length may lie on purpose."""
    n = len(data) if length is None else length
    pad = (4 - len(data) % 4) % 4
    return struct.pack("!BBH", code, 0, n) + data + bytes(pad)


def req_hdr(op, lifetime, client=CLIENT, version=VERSION, rbit=0):
    return struct.pack("!BBHI", version, rbit | op, 0, lifetime) + client


def resp_hdr(op, result, lifetime, epoch):
    return struct.pack("!BBBBII", VERSION, 0x80 | op, 0, result,
                       lifetime, epoch) + bytes(12)


def map_body(proto, iport, eport, ext=ANY4):
    return NONCE + struct.pack("!B3xHH", proto, iport, eport) + ext


def peer_body(proto, iport, eport, rport, remote, ext=ANY4):
    return map_body(proto, iport, eport, ext) + \
        struct.pack("!H2x", rport) + remote


def filt(prefix, port, remote):
    return struct.pack("!BBH", 0, prefix, port) + remote


def port_set(size, first, parity):
    return struct.pack("!HHB", size, first, 1 if parity else 0)


def corpus():
    mapb = map_body(TCP, 8080, 8080)
    peerb = peer_body(TCP, 40000, 0, 443, addr("2001:db8::80"))
    map_req = req_hdr(OP_MAP, 3600) + mapb
    yield "map-req-plain", map_req
    yield "map-req-third-party-desc", map_req + \
        opt(OPT_THIRD_PARTY, THIRD) + opt(OPT_DESCRIPTION, b"https")
    yield "map-req-prefer-failure-filters", map_req + \
        opt(OPT_PREFER_FAILURE) + \
        opt(OPT_FILTER, filt(0, 0, bytes(16))) + \
        opt(OPT_FILTER, filt(120, 9000, addr("198.51.100.0"))) + \
        opt(OPT_FILTER, filt(48, 0, addr("2001:db8::")))
    yield "map-req-port-set", req_hdr(OP_MAP, 3600) + \
        map_body(UDP, 50000, 0) + opt(OPT_PORT_SET, port_set(100, 50000, 1))
    yield "map-req-third-party-id", map_req + \
        opt(OPT_THIRD_PARTY_ID, b"\x00\x01\x02") + opt(OPT_THIRD_PARTY, THIRD)
    # PREFIX64 kept raw, then more optional options than msg->raw holds
    yield "map-req-prefix64-many-optional", map_req + \
        opt(OPT_PREFIX64, struct.pack("!H", 12) + bytes(12)) + \
        opt(222, b"xyz") * 70
    yield "peer-req-options", req_hdr(OP_PEER, 600) + peerb + \
        opt(OPT_THIRD_PARTY, THIRD) + \
        opt(OPT_DESCRIPTION, "caf\u00e9".encode()) + \
        opt(OPT_THIRD_PARTY_ID, b"\x0a\x0b\x0c\x0d")
    yield "announce-req", req_hdr(OP_ANNOUNCE, 0)
    yield "unknown-opcode-req", req_hdr(42, 60) + b"\x01\x02\x03\x04" + \
        opt(99, b"ab")

    # responses (section 7.2): R set, result, lifetime, epoch
    yield "map-resp-success", resp_hdr(OP_MAP, 0, 7200, 1234) + \
        map_body(UDP, 5000, 50000, addr("203.0.113.7"))
    yield "map-resp-all-options", resp_hdr(OP_MAP, 0, 7200, 1234) + \
        mapb + opt(OPT_THIRD_PARTY, THIRD) + opt(OPT_PREFER_FAILURE) + \
        opt(OPT_FILTER, filt(128, 80, addr("198.51.100.9"))) + \
        opt(OPT_DESCRIPTION, b"Camera") + \
        opt(OPT_PORT_SET, port_set(32, 8080, 0)) + opt(99)
    yield "peer-resp", resp_hdr(OP_PEER, 0, 600, 99) + peerb
    yield "announce-resp", resp_hdr(OP_ANNOUNCE, 0, 0, 5)
    # an error reply carrying a request copy that was itself short
    yield "map-resp-error-truncated", (resp_hdr(OP_MAP, 3, 1800, 7) +
                                       mapb)[:40]
    # NAT-PMP's answer to a PCP request (RFC 6886 section 3.5)
    yield "natpmp-unsupp-version", struct.pack("!BBHI", 0, 0x81, 1, 4660)

    # malformed requests, section 8.2 pipeline (spec/pcp.md 1.5)
    yield "bad-1-octet", b"\x02"
    yield "bad-r-bit", req_hdr(OP_MAP, 3600, rbit=0x80) + mapb
    yield "bad-version-1", req_hdr(OP_MAP, 3600, version=1) + mapb
    yield "bad-short-20", map_req[:20]
    yield "bad-oversize-1104", map_req + bytes(1104 - len(map_req))
    yield "bad-not-mult4-62", map_req + b"\x00\x00"
    yield "bad-map-short-56", map_req[:56]
    yield "bad-auth-opcode", req_hdr(OP_AUTH, 0) + bytes(8)

    # malformed options and bodies (spec/pcp.md 1.4, section 3)
    yield "bad-opt-past-end", map_req + opt(OPT_DESCRIPTION, b"abcd", 64)
    yield "bad-third-party-twice", map_req + opt(OPT_THIRD_PARTY, THIRD) + \
        opt(OPT_THIRD_PARTY, THIRD)
    yield "bad-third-party-announce", req_hdr(OP_ANNOUNCE, 0) + \
        opt(OPT_THIRD_PARTY, THIRD)
    yield "bad-prefer-failure-delete", req_hdr(OP_MAP, 0) + mapb + \
        opt(OPT_PREFER_FAILURE)
    yield "bad-prefer-failure-peer", req_hdr(OP_PEER, 600) + \
        peer_body(TCP, 40000, 4000, 443, addr("2001:db8::80")) + \
        opt(OPT_PREFER_FAILURE)
    yield "bad-prefer-failure-port0", req_hdr(OP_MAP, 3600) + \
        map_body(TCP, 8080, 0) + opt(OPT_PREFER_FAILURE)
    yield "bad-filter-prefix95", map_req + \
        opt(OPT_FILTER, filt(95, 0, addr("198.51.100.0")))
    yield "bad-filter-delete", req_hdr(OP_MAP, 0) + mapb + \
        opt(OPT_FILTER, filt(128, 0, addr("198.51.100.1")))
    yield "bad-map-proto0-port", req_hdr(OP_MAP, 3600) + map_body(0, 80, 0)
    yield "bad-peer-remote-port0", req_hdr(OP_PEER, 600) + \
        peer_body(TCP, 40000, 0, 0, addr("2001:db8::80"))
    yield "bad-third-party-id-alone", map_req + \
        opt(OPT_THIRD_PARTY_ID, b"\x01")
    yield "bad-port-set-size0", map_req + \
        opt(OPT_PORT_SET, port_set(0, 8080, 0))
    yield "bad-port-set-prefer-failure", map_req + \
        opt(OPT_PORT_SET, port_set(4, 8080, 0)) + opt(OPT_PREFER_FAILURE)
    yield "bad-description-1017", map_req + \
        opt(OPT_DESCRIPTION, b"d" * 1017)
    yield "desc-invalid-utf8", map_req + \
        opt(OPT_DESCRIPTION, b"\xc0\xafbad\xff")
    yield "bad-unknown-mandatory", map_req + opt(99, b"\x00\x01")
    yield "bad-auth-tag", map_req + opt(OPT_AUTH_TAG, bytes(16))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else \
        os.path.join(here, "corpus", "pcp")
    os.makedirs(out, exist_ok=True)
    count = 0
    for name, data in corpus():
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(data)
        count += 1
    print(f"wrote {count} files to {out}")


if __name__ == "__main__":
    main()
