#!/usr/bin/env python3
"""A scripted PCP server (RFC 6887) on loopback, for testing pcp-iwfctl.

It answers MAP, PEER and ANNOUNCE requests the way the command line says:
success with a given external address, an error result, silence for the
first N requests (to exercise retransmission), decoy replies that a correct
client must ignore (wrong nonce, opcode, ports, peer, THIRD_PARTY missing,
unasked for or for another address, R bit clear, bad length) before the
real one, replies with a chosen THIRD_PARTY (or none), or a NAT-PMP-only
"unsupported version" reply.
Every request it receives is logged as one JSON line so the test can check
what the client sent. Standard library only; it exits by itself after
--max-time seconds.
"""

import argparse
import ipaddress
import json
import os
import socket
import struct
import sys
import time

PCP_VERSION = 2
R_BIT = 0x80
OP_ANNOUNCE, OP_MAP, OP_PEER = 0, 1, 2
HDR = 24
MAP_BODY = 36
PEER_BODY = 56
OPT_THIRD_PARTY = 1
OPT_PREFER_FAILURE = 2
OPT_DESCRIPTION = 128
UNSUPP_VERSION = 1


def pcp_addr(text):
    """An address in PCP form: 16 octets, IPv4-mapped for IPv4 (§5)."""
    addr = ipaddress.ip_address(text)
    if addr.version == 4:
        return b"\0" * 10 + b"\xff\xff" + addr.packed
    return addr.packed


def addr_text(raw):
    addr = ipaddress.IPv6Address(raw)
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def parse_options(data):
    """The TLVs after the opcode body (§7.3): a list of (code, bytes)."""
    opts = []
    off = 0
    while off + 4 <= len(data):
        code, _, length = struct.unpack_from("!BBH", data, off)
        off += 4
        opts.append((code, data[off:off + length]))
        off += (length + 3) & ~3
    return opts


def parse_request(pkt):
    """The fields the tests look at, or None if it is not a PCP request."""
    if len(pkt) < HDR or pkt[0] != PCP_VERSION or pkt[1] & R_BIT:
        return None
    req = {
        "opcode": pkt[1] & 0x7F,
        "lifetime": struct.unpack_from("!I", pkt, 4)[0],
        "client_ip": addr_text(pkt[8:24]),
        "length": len(pkt),
        "hex": pkt.hex(),
    }
    body = body_size(req["opcode"])
    if len(pkt) < HDR + body:
        return None
    if body:
        req["nonce"] = pkt[24:36].hex()
        req["protocol"] = pkt[36]
        req["internal_port"], req["ext_port"] = struct.unpack_from(
            "!HH", pkt, 40)
        req["ext_addr"] = addr_text(pkt[44:60])
    if req["opcode"] == OP_PEER:
        req["peer_port"] = struct.unpack_from("!H", pkt, 60)[0]
        req["peer_addr"] = addr_text(pkt[64:80])
    req["options"] = []
    for code, data in parse_options(pkt[HDR + body:]):
        opt = {"code": code, "len": len(data)}
        if code == OPT_THIRD_PARTY and len(data) == 16:
            opt["addr"] = addr_text(data)
        elif code == OPT_DESCRIPTION:
            opt["text"] = data.decode("utf-8", "replace")
        req["options"].append(opt)
    return req


def option(code, data=b""):
    pad = (4 - len(data) % 4) % 4
    return struct.pack("!BBH", code, 0, len(data)) + data + b"\0" * pad


def body_size(op):
    return {OP_MAP: MAP_BODY, OP_PEER: PEER_BODY}.get(op, 0)


def set_third_party(reply, op, addr):
    """reply with its THIRD_PARTY option removed and, when addr is given,
    one for addr put first (the other options kept in order)."""
    end = HDR + body_size(op)
    opts = option(OPT_THIRD_PARTY, pcp_addr(addr)) if addr else b""
    for code, data in parse_options(reply[end:]):
        if code != OPT_THIRD_PARTY:
            opts += option(code, data)
    return bytes(reply[:end]) + opts


class Server:
    def __init__(self, args):
        self.args = args
        self.received = 0
        self.start = time.monotonic()

    def epoch(self):
        return self.args.epoch + int(time.monotonic() - self.start)

    def header(self, op, result, lifetime):
        return struct.pack("!BBBBII", PCP_VERSION, R_BIT | op, 0, result,
                           lifetime, self.epoch()) + b"\0" * 12

    def success(self, pkt, req):
        """§8.2 success: header, the opcode data, the processed options."""
        a = self.args
        op = req["opcode"]
        if op == OP_ANNOUNCE:
            return self.header(op, 0, 0)
        lifetime = a.lifetime if a.lifetime is not None else req["lifetime"]
        ext_port = a.ext_port if a.ext_port is not None else (
            req["ext_port"] or req["internal_port"])
        body = bytearray(pkt[24:24 + (PEER_BODY if op == OP_PEER
                                      else MAP_BODY)])
        struct.pack_into("!H", body, 42 - 24, ext_port)
        body[44 - 24:60 - 24] = pcp_addr(a.ext_addr)
        opts = b""
        if not a.no_echo:
            for code, data in parse_options(pkt[24 + len(body):]):
                if code == OPT_DESCRIPTION and a.description_hex is not None:
                    data = bytes.fromhex(a.description_hex)
                if code in (OPT_THIRD_PARTY, OPT_PREFER_FAILURE,
                            OPT_DESCRIPTION):
                    opts += option(code, data)
        return self.header(op, 0, lifetime) + bytes(body) + opts

    def error(self, pkt, result):
        """§8.2 error: the request copied, R set, result, lifetime, epoch;
        octets 12..23 keep the end of the Client IP field."""
        reply = bytearray(pkt[:1100])
        reply += b"\0" * ((4 - len(reply) % 4) % 4)
        reply[1] |= R_BIT
        reply[3] = result
        struct.pack_into("!II", reply, 4, self.args.error_lifetime,
                         self.epoch())
        return bytes(reply)

    def decoys(self, pkt, good, req):
        """Replies a correct client must ignore (§8.3), each one different
        from the good reply in one way only; they carry another external
        address so that accepting one would show in the output."""
        bad = bytearray(good)
        decoy_addr = pcp_addr(self.args.decoy_addr)
        if req["opcode"] != OP_ANNOUNCE:
            bad[44:60] = decoy_addr
        out = []
        if req["opcode"] != OP_ANNOUNCE:
            wrong_nonce = bytearray(bad)
            wrong_nonce[24] ^= 0xFF
            out.append(wrong_nonce)
            wrong_proto = bytearray(bad)
            wrong_proto[36] ^= 0x01
            out.append(wrong_proto)
            wrong_port = bytearray(bad)
            struct.pack_into("!H", wrong_port, 40, req["internal_port"] ^ 1)
            out.append(wrong_port)
        if req["opcode"] == OP_PEER:
            wrong_peer = bytearray(bad)
            struct.pack_into("!H", wrong_peer, 60, req["peer_port"] ^ 1)
            out.append(wrong_peer)
        wrong_op = bytearray(bad)
        wrong_op[1] = R_BIT | (OP_PEER if req["opcode"] != OP_PEER
                               else OP_MAP)
        out.append(wrong_op)
        no_r = bytearray(bad)
        no_r[1] &= 0x7F
        out.append(no_r)
        out.append(bytes(bad) + b"\0\0")           # not a multiple of 4
        out.append(bytes(bad[:20]))                # shorter than 24
        v1 = bytearray(bad)
        v1[0] = 1                                  # not version 2
        out.append(v1)
        if req["opcode"] != OP_ANNOUNCE:
            # §11.4/§12.4: the internal address (THIRD_PARTY's when one
            # was sent) is part of the match; error replies copy every
            # option and a success echoes a processed THIRD_PARTY
            sent = [o.get("addr") for o in req["options"]
                    if o["code"] == OPT_THIRD_PARTY]
            if sent:
                out.append(set_third_party(bad, req["opcode"], None))
                out.append(set_third_party(bad, req["opcode"],
                                           self.args.decoy_third_party))
            else:
                out.append(set_third_party(bad, req["opcode"],
                                           self.args.decoy_third_party))
        return [bytes(d) for d in out]

    def replies(self, pkt, req):
        a = self.args
        if a.mode == "natpmp":
            # RFC 6886 §3.5 / RFC 6887 §9: version 0, op 128 + op, result 1
            return [struct.pack("!BBHI", 0, R_BIT | req["opcode"],
                                UNSUPP_VERSION, self.epoch())]
        if a.mode == "error":
            good = self.error(pkt, a.result)
        else:
            good = self.success(pkt, req)
        if a.third_party is not None and req["opcode"] != OP_ANNOUNCE:
            good = set_third_party(good, req["opcode"],
                                   None if a.third_party == "none"
                                   else a.third_party)
        if a.mode == "decoys-only":
            return self.decoys(pkt, good, req)
        if a.decoys:
            return self.decoys(pkt, good, req) + [good]
        return [good]

    def handle(self, sock, pkt, src, log):
        self.received += 1
        req = parse_request(pkt)
        entry = {"n": self.received, "t": time.monotonic() - self.start,
                 "src_addr": src[0], "src_port": src[1],
                 "request": req}
        log.write(json.dumps(entry) + "\n")
        log.flush()
        if req is None or self.args.mode == "silent":
            return
        if self.received <= self.args.drop_first:
            return
        for reply in self.replies(pkt, req):
            sock.sendto(reply, src)

    def run(self):
        a = self.args
        family = socket.AF_INET6 if ":" in a.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((a.address, a.port))
        port = sock.getsockname()[1]
        if a.ready_file:
            tmp = a.ready_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % port)
            os.rename(tmp, a.ready_file)
        deadline = self.start + a.max_time
        with open(a.log, "a") as log:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                try:
                    pkt, src = sock.recvfrom(2048)
                except socket.timeout:
                    break
                self.handle(sock, pkt, src, log)
        sock.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", default="127.0.0.1",
                   help="listen address (loopback only)")
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--ready-file", help="write the bound port here")
    p.add_argument("--log", required=True, help="JSON lines of requests")
    p.add_argument("--mode", default="success",
                   choices=["success", "error", "silent", "natpmp",
                            "decoys-only"])
    p.add_argument("--result", type=int, default=2,
                   help="result code for --mode error")
    p.add_argument("--error-lifetime", type=int, default=1800)
    p.add_argument("--ext-addr", default="203.0.113.1")
    p.add_argument("--ext-port", type=int,
                   help="assigned port (default: suggested, else internal)")
    p.add_argument("--lifetime", type=int,
                   help="granted lifetime (default: the requested one)")
    p.add_argument("--epoch", type=int, default=1234)
    p.add_argument("--drop-first", type=int, default=0,
                   help="ignore the first N requests")
    p.add_argument("--decoys", action="store_true",
                   help="send replies that must be ignored before the answer")
    p.add_argument("--decoy-addr", default="198.51.100.99")
    p.add_argument("--decoy-third-party", default="192.0.2.99",
                   help="THIRD_PARTY address of the decoys that carry one")
    p.add_argument("--third-party",
                   help="answer with this THIRD_PARTY address (\"none\": "
                   "without the option) instead of echoing the request's")
    p.add_argument("--no-echo", action="store_true",
                   help="leave the options out of success replies")
    p.add_argument("--description-hex",
                   help="echo these octets as the DESCRIPTION instead")
    p.add_argument("--max-time", type=float, default=60.0)
    args = p.parse_args()
    if not ipaddress.ip_address(args.address).is_loopback:
        sys.exit("fake_pcp_server: listens on loopback only")
    Server(args).run()


if __name__ == "__main__":
    main()
