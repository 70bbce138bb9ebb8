#!/usr/bin/python3
"""abuse_client.py - the requests and the floods of tests/netns/abuse.sh.

Standard library only. Every request can be sent from a chosen source address (a
spoofed one added to the LAN host's interface) and prints one JSON object with what
came back and how long it took, so the shell test asserts on it.

  pcp-map SRC GW PROTO INTPORT LIFETIME WAIT       one PCP MAP (RFC 6887 §11.1)
  natpmp-map SRC GW PROTO INTPORT LIFETIME WAIT    one NAT-PMP map request (RFC 6886 §3.3)
  soap SRC URL STYPE ACTION WAIT [Name=value...]   one SOAP action (miniupnpc's shape)
  flood-udp SRC GW COUNT SEED                      malformed datagrams to GW:5351
  flood-http SRC GW PORT1 PORT2 COUNT SEED HOLD    broken HTTP requests, HOLD half-open
                                                   ones kept until stdin closes

A request that gets no answer within WAIT seconds reports "answered": false; the
request is sent once (no retransmission: WAIT is the budget being measured). A PCP
MAP's nonce is derived from (SRC, PROTO, INTPORT), so asking again is a refresh.
"""

import hashlib
import json
import random
import re
import socket
import struct
import sys
import time

PCP_PORT = 5351
PCP_VERSION = 2
PCP_OP_MAP = 1
NATPMP_OP = {"udp": 1, "tcp": 2}
PROTO = {"tcp": 6, "udp": 17}


def mapped(addr):
    """An IPv4 address as the IPv4-mapped IPv6 address PCP carries (RFC 6887 §5)."""
    return b"\0" * 10 + b"\xff\xff" + socket.inet_aton(addr)


def udp_exchange(src, gw, pkt, wait):
    """Send pkt from src to gw:5351; the first datagram back within wait seconds."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(wait)
    t0 = time.monotonic()
    s.sendto(pkt, (gw, PCP_PORT))
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        return None, None, (time.monotonic() - t0) * 1000
    finally:
        s.close()
    return data, peer, (time.monotonic() - t0) * 1000


def pcp_map(src, gw, proto, port, lifetime, wait):
    # one nonce per (source, protocol, port): a second request is a refresh (§11.2)
    nonce = hashlib.sha256(("%s/%s/%d" % (src, proto, port)).encode()).digest()[:12]
    pkt = struct.pack("!BBHI", PCP_VERSION, PCP_OP_MAP, 0, lifetime) + mapped(src)
    pkt += nonce + struct.pack("!B3xHH", PROTO[proto], port, port) + mapped("0.0.0.0")
    data, peer, ms = udp_exchange(src, gw, pkt, wait)
    out = {"answered": data is not None, "ms": round(ms, 1)}
    if data is not None:
        out["from"] = peer[0]
        out["len"] = len(data)
        if len(data) >= 60 and data[1] == 0x80 | PCP_OP_MAP:
            out["result"] = data[3]
            out["lifetime"] = struct.unpack("!I", data[4:8])[0]
            out["nonce_ok"] = data[24:36] == nonce
            out["ext_port"] = struct.unpack("!H", data[42:44])[0]
        else:
            out["result"] = None
    return out


def natpmp_map(src, gw, proto, port, lifetime, wait):
    op = NATPMP_OP[proto]
    pkt = struct.pack("!BBHHHI", 0, op, 0, port, port, lifetime)
    data, peer, ms = udp_exchange(src, gw, pkt, wait)
    out = {"answered": data is not None, "ms": round(ms, 1)}
    if data is not None:
        out["from"] = peer[0]
        out["len"] = len(data)
        if len(data) >= 16 and data[1] == 128 + op:
            out["result"] = struct.unpack("!H", data[2:4])[0]
            out["ext_port"] = struct.unpack("!H", data[10:12])[0]
            out["lifetime"] = struct.unpack("!I", data[12:16])[0]
        else:
            out["result"] = None
    return out


def soap(src, url, stype, action, wait, args):
    m = re.match(r"http://([0-9.]+):([0-9]+)(/.*)$", url)
    host, port, path = m.group(1), int(m.group(2)), m.group(3)
    inner = "".join("<%s>%s</%s>" % (k, v, k) for k, v in args)
    body = ('<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/'
            'soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">'
            '<s:Body><u:%s xmlns:u="%s">%s</u:%s></s:Body></s:Envelope>\r\n'
            % (action, stype, inner, action)).encode()
    req = ("POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/xml\r\n"
           "SOAPAction: \"%s#%s\"\r\nConnection: Close\r\nContent-Length: %d\r\n\r\n"
           % (path, host, port, stype, action, len(body))).encode() + body
    out = {"connected": False, "answered": False}
    t0 = time.monotonic()
    deadline = t0 + wait
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((src, 0))
        s.settimeout(wait)
        s.connect((host, port))
        out["connected"] = True
        s.sendall(req)
        data = b""
        while time.monotonic() < deadline:
            s.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            hdr, sep, rest = data.partition(b"\r\n\r\n")
            cl = re.search(rb"(?i)\r\ncontent-length:\s*([0-9]+)", hdr)
            if sep and cl and len(rest) >= int(cl.group(1)):
                break
    except OSError as e:
        out["error"] = type(e).__name__
        data = b""
    finally:
        s.close()
    out["ms"] = round((time.monotonic() - t0) * 1000, 1)
    st = re.match(rb"HTTP/1\.[01] ([0-9]{3})", data)
    if st:
        out["answered"] = True
        out["status"] = int(st.group(1))
        code = re.search(rb"<errorCode>([0-9]+)</errorCode>", data)
        out["error_code"] = int(code.group(1)) if code else None
        out["out"] = {k.decode(): v.decode() for k, v in
                      re.findall(rb"<(New[A-Za-z]+)>([^<]*)</New[A-Za-z]+>", data)}
    return out


def flood_udp(src, gw, count, seed):
    """Malformed datagrams: random lengths, bad versions, truncated PCP and NAT-PMP
    headers, valid-looking headers with garbage after them, as fast as we can."""
    rnd = random.Random(seed)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    kinds = {}
    sent = errors = 0
    t0 = time.monotonic()
    for i in range(count):
        k = i % 8
        if k == 0:      # random bytes of a random length (0..1200)
            pkt = rnd.randbytes(rnd.randrange(0, 1201))
        elif k == 1:    # a PCP version above 2 (RFC 6887 §9: UNSUPP_VERSION)
            pkt = bytes([rnd.randrange(3, 256)]) + rnd.randbytes(rnd.randrange(1, 60))
        elif k == 2:    # a truncated PCP header (< 24 octets, §8.2 MALFORMED/drop)
            pkt = bytes([PCP_VERSION, PCP_OP_MAP]) + rnd.randbytes(rnd.randrange(0, 22))
        elif k == 3:    # a truncated NAT-PMP map request (< 12 octets)
            pkt = bytes([0, rnd.choice((1, 2))]) + rnd.randbytes(rnd.randrange(0, 10))
        elif k == 4:    # a PCP MAP cut inside its opcode data
            pkt = (struct.pack("!BBHI", PCP_VERSION, PCP_OP_MAP, 0, 120) + mapped(src)
                   + rnd.randbytes(rnd.randrange(0, 36)))
        elif k == 5:    # a PCP MAP with a garbage option list, not a multiple of 4
            pkt = (struct.pack("!BBHI", PCP_VERSION, PCP_OP_MAP, 0, 120) + mapped(src)
                   + rnd.randbytes(36) + rnd.randbytes(rnd.randrange(1, 200)))
        elif k == 6:    # responses (R bit set) and unknown opcodes
            pkt = bytes([rnd.choice((0, PCP_VERSION)), 0x80 | rnd.randrange(0, 128)]) \
                + rnd.randbytes(rnd.randrange(0, 64))
        else:           # longer than any valid PCP message (> 1100 octets)
            pkt = bytes([PCP_VERSION, PCP_OP_MAP]) + rnd.randbytes(rnd.randrange(1100, 1400))
        kinds[k] = kinds.get(k, 0) + 1
        try:
            s.sendto(pkt, (gw, PCP_PORT))
            sent += 1
        except OSError:
            errors += 1
    secs = time.monotonic() - t0
    s.close()
    return {"sent": sent, "errors": errors, "secs": round(secs, 3),
            "per_sec": int(sent / secs) if secs > 0 else None}


def http_payloads(rnd, host, port):
    """The broken requests, one kind per index: (bytes, keep_open)."""
    big = "X-Fill: " + "a" * 9000
    return [
        (rnd.randbytes(rnd.randrange(1, 3000)), False),                  # garbage
        (("GET / HTTP/1.1\r\nHost: %s\r\n" % host + big + "\r\n\r\n").encode(), False),
        (("POST /ctl/IPConn HTTP/1.1\r\nHost: %s:%d\r\n" % (host, port)
          + "".join("X-H%d: %s\r\n" % (i, "b" * 100) for i in range(200))
          + "\r\n").encode(), False),                                    # 200 headers
        (("POST /ctl/IPConn HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: 99999999\r\n"
          "\r\n<s:Envelope>" % (host, port)).encode(), False),          # huge C-L
        (("POST /ctl/IPConn HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: -5\r\n\r\nxx"
          % (host, port)).encode(), False),                              # negative C-L
        (("POST /ctl/IPConn HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: 12abc\r\n\r\n"
          "<a/>" % (host, port)).encode(), False),                       # bad C-L
        (("POST /ctl/IPConn HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: 10\r\n"
          "Content-Length: 2000\r\n\r\n0123456789" % (host, port)).encode(), False),
        (("GET /" + "A" * 20000 + " HTTP/1.1\r\n\r\n").encode(), False),  # huge URI
        (("POST /ctl/IPConn HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: 500\r\n\r\n"
          "<s:Envelope" % (host, port)).encode(), True),                 # half body
        (b"POST /ctl/IPConn HTTP/1.1\r\nHost: ", True),                  # half header
    ]


def flood_http(src, gw, port1, port2, count, seed, hold):
    """count broken requests, alternating between the two ports, a few at a time; up
    to hold half-open requests (per port) stay open until stdin closes."""
    import selectors
    rnd = random.Random(seed)
    res = {}
    held = []
    per_port_held = {port1: 0, port2: 0}
    sel = selectors.DefaultSelector()
    inflight = 0
    t0 = time.monotonic()

    def finish(s, outcome):
        nonlocal inflight
        sel.unregister(s)
        s.close()
        inflight -= 1
        res[outcome] = res.get(outcome, 0) + 1

    def reap(timeout):
        for key, _ in sel.select(timeout):
            s, start = key.fileobj, key.data
            try:
                d = s.recv(65536)
                finish(s, "answered" if d.startswith(b"HTTP/") else
                       ("closed" if not d else "other"))
            except OSError as e:
                finish(s, type(e).__name__)
        now = time.monotonic()
        for key in list(sel.get_map().values()):
            if now - key.data > 0.5:
                finish(key.fileobj, "no_answer")

    for i in range(count):
        port = port1 if i % 2 == 0 else port2
        payloads = http_payloads(rnd, gw, port)
        data, keep = payloads[(i // 2) % len(payloads)]
        while inflight >= 4:
            reap(0.05)
        s = socket.socket()
        s.bind((src, 0))
        s.settimeout(2)
        try:
            s.connect((gw, port))
            s.sendall(data)
        except OSError as e:
            s.close()
            res[type(e).__name__] = res.get(type(e).__name__, 0) + 1
            continue
        if keep and per_port_held[port] < hold:
            per_port_held[port] += 1
            held.append(s)
            res["held_open"] = res.get("held_open", 0) + 1
            continue
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, time.monotonic())
        inflight += 1
    while inflight > 0:
        reap(0.05)
    print(json.dumps({"requests": count, "outcomes": res, "held": len(held),
                      "secs": round(time.monotonic() - t0, 3)}), flush=True)
    # the half-open requests stay until the test says so (stdin closes), at most 60 s
    import select
    select.select([sys.stdin], [], [], 60)
    for s in held:
        s.close()
    print(json.dumps({"released": len(held)}), flush=True)
    return None


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, a = argv[1], argv[2:]
    if cmd == "pcp-map":
        r = pcp_map(a[0], a[1], a[2], int(a[3]), int(a[4]), float(a[5]))
    elif cmd == "natpmp-map":
        r = natpmp_map(a[0], a[1], a[2], int(a[3]), int(a[4]), float(a[5]))
    elif cmd == "soap":
        r = soap(a[0], a[1], a[2], a[3], float(a[4]),
                 [tuple(x.split("=", 1)) for x in a[5:]])
    elif cmd == "flood-udp":
        r = flood_udp(a[0], a[1], int(a[2]), int(a[3]))
    elif cmd == "flood-http":
        r = flood_http(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), int(a[6]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if r is not None:
        print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
