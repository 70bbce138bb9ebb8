#!/usr/bin/python3
"""upnp_soap_client.py - a raw UPnP IGD client for tests/netns/upnp_clients.sh.

Standard library only. It speaks SSDP, HTTP, SOAP and GENA byte by byte so the tests
can send requests exactly the way deployed control points write them (each shape cites
the client source it was taken from) and abuse the server with broken ones.

Subcommands (all print "ok - ..." / "FAIL - ..." lines for checks; exit 1 when a
check failed, 2 on a usage or set-up error):
  discover [--st ST]              M-SEARCH; prints "location=URL" of the first answer
  call URL ACTION [Name=value..]  one standard (miniupnpc-shaped) call; prints JSON
  shapes URL VERSION PORTBASE EXT client request shapes (spec/iwf.md §6; issue 6)
  abuse URL                       oversized / broken HTTP and SOAP, then a valid call
  listen ADDR PORT OUTFILE        record every TCP connection and request (GENA sink)
  subscribe URL CALLBACK          SUBSCRIBE to the WANIPConnection event URL; JSON
  probe-wan HOST PORT             TCP connect + GET; SSDP unicast M-SEARCH; JSON
"""

import json
import os
import re
import select
import socket
import sys
import time
import traceback
import urllib.parse
import xml.etree.ElementTree as ET

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"
UPNP_CTRL = "urn:schemas-upnp-org:control-1-0"
UPNP_DEV = "urn:schemas-upnp-org:device-1-0"
SSDP_ADDR = ("239.255.255.250", 1900)
WANIPC = "urn:schemas-upnp-org:service:WANIPConnection:"
WANCIC = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:"
IO_TIMEOUT = 12.0       # longer than the daemon's UPNP_CLIENT_WAIT_MS (8 s)

FAILS = 0


def check(desc, cond, detail=None):
    """One assertion: prints ok/FAIL; on failure the detail (request and answer)."""
    global FAILS
    if cond:
        print("ok - %s" % desc, flush=True)
        return True
    FAILS += 1
    print("FAIL - %s" % desc, flush=True)
    if detail:
        for line in str(detail).splitlines()[:60]:
            print("    | %s" % line)
    sys.stdout.flush()
    return False


def shown(data, limit=1500):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    if len(text) > limit:
        text = text[:limit] + "... (%d bytes)" % len(text)
    return text.replace("\r", "\\r")


# --- HTTP -------------------------------------------------------------------------

class Response:
    def __init__(self, version, status, reason, headers, body):
        self.version, self.status, self.reason = version, status, reason
        self.headers, self.body = headers, body

    def header(self, name, default=""):
        return self.headers.get(name.lower(), default)

    def __str__(self):
        hdrs = "".join("%s: %s\n" % kv for kv in self.headers.items())
        return "%s %d %s\n%s\n%s" % (self.version, self.status, self.reason, hdrs,
                                     shown(self.body))


class Conn:
    """One TCP connection to the IGD; responses are parsed as they arrive."""

    def __init__(self, host, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.closed = False

    def local_addr(self):
        return self.sock.getsockname()[0]

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        chunk = self.sock.recv(65536)
        if timeout is not None:
            self.sock.settimeout(IO_TIMEOUT)
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def _read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed inside a body")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _read_line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("connection closed inside chunked body")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_response(self, timeout=None):
        """The next response (1xx included); EOFError when closed before one."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(timeout):
                raise EOFError("connection closed before a response (%d bytes)"
                               % len(self.buf))
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"(HTTP/\d\.\d)\s+(\d{3})\s*(.*)", lines[0])
        if not m:
            raise ValueError("not an HTTP status line: %r" % lines[0])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        status = int(m.group(2))
        body = b""
        if status >= 200 and status not in (204, 304):
            if "chunked" in headers.get("transfer-encoding", "").lower():
                while True:
                    size = int(self._read_line().split(b";")[0], 16)
                    if size == 0:
                        self._read_line()
                        break
                    body += self._read_exact(size)
                    self._read_line()
            elif "content-length" in headers:
                body = self._read_exact(int(headers["content-length"]))
            else:
                while self._fill():
                    pass
                body, self.buf = self.buf, b""
        return Response(m.group(1), status, m.group(3), headers, body)

    def final_response(self):
        while True:
            r = self.read_response()
            if r.status >= 200:
                return r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def split_url(url):
    u = urllib.parse.urlsplit(url)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return u.hostname, u.port or 80, path


def http_get(url):
    host, port, path = split_url(url)
    c = Conn(host, port)
    c.send(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
            % (path, host, port)).encode())
    r = c.final_response()
    c.close()
    return r


# --- the IGD: description and services --------------------------------------------

class Igd:
    def __init__(self, desc_url):
        self.desc_url = desc_url
        r = http_get(desc_url)
        if r.status != 200:
            raise RuntimeError("GET %s: %d" % (desc_url, r.status))
        self.desc = r.body
        root = ET.fromstring(r.body)
        base = root.findtext("{%s}URLBase" % UPNP_DEV) or desc_url
        self.services = {}
        for svc in root.iter("{%s}service" % UPNP_DEV):
            stype = (svc.findtext("{%s}serviceType" % UPNP_DEV) or "").strip()
            entry = {"type": stype}
            for tag, key in (("controlURL", "control"), ("eventSubURL", "event"),
                             ("SCPDURL", "scpd")):
                entry[key] = urllib.parse.urljoin(base,
                                                  (svc.findtext("{%s}%s" % (UPNP_DEV, tag))
                                                   or "").strip())
            self.services.setdefault(stype.rsplit(":", 1)[0] + ":", entry)
        if WANIPC not in self.services:
            raise RuntimeError("no WANIPConnection service in %s" % desc_url)
        self.wanipc = self.services[WANIPC]
        self.stype = self.wanipc["type"]
        self.host, self.port, self.control_path = split_url(self.wanipc["control"])
        # the event URL may live on another server than the control URL (ours:
        # GENA on pupnp's, SOAP on the daemon's own; both LAN-side)
        self.event_host, self.event_port, self.event_path = split_url(self.wanipc["event"])


def soap_result(resp):
    """(out-arguments dict, UPnP error code or None) of a SOAP response."""
    try:
        root = ET.fromstring(resp.body)
    except ET.ParseError:
        return {}, None
    body = root.find("{%s}Body" % SOAP_ENV)
    if body is None or len(body) == 0:
        return {}, None
    first = body[0]
    if first.tag == "{%s}Fault" % SOAP_ENV:
        code = first.findtext(".//{%s}errorCode" % UPNP_CTRL)
        return {}, int(code) if code and code.strip().isdigit() else -1
    return {el.tag.split("}")[-1]: (el.text or "") for el in first}, None


def post_bytes(igd, headers, body, version="1.1", path=None):
    """A POST as the client writes it: headers is a list of raw header lines."""
    if isinstance(body, str):
        body = body.encode()
    lines = ["POST %s HTTP/%s" % (path or igd.control_path, version)]
    lines += headers
    if not any(h.lower().startswith("content-length:") for h in headers):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def exchange(igd, request, conn=None):
    """Send request bytes, return (response or None, error text, conn)."""
    own = conn is None
    try:
        if own:
            conn = Conn(igd.host, igd.port)
        conn.send(request)
        r = conn.final_response()
        return r, "", conn
    except (OSError, EOFError, ValueError) as e:
        return None, "%s: %s" % (type(e).__name__, e), conn
    finally:
        if own and conn is not None:
            conn.close()


def std_body(action, stype, args):
    """miniupnpc/src/miniupnpc.c simpleUPnPcommand2: the reference shape."""
    inner = "".join("<%s>%s</%s>" % (k, v, k) for k, v in args)
    return ('<?xml version="1.0"?>\r\n'
            '<s:Envelope xmlns:s="%s" s:encodingStyle="%s"><s:Body>'
            '<u:%s xmlns:u="%s">%s</u:%s></s:Body></s:Envelope>\r\n'
            % (SOAP_ENV, SOAP_ENC, action, stype, inner, action))


def std_request(igd, action, args, version="1.1", stype=None, path=None):
    """miniupnpc/src/minisoap.c soapPostSubmit headers."""
    stype = stype or igd.stype
    headers = ["Host: %s:%d" % (igd.host, igd.port),
               "User-Agent: Debian/12, UPnP/1.1, MiniUPnPc/2.2.4",
               "Content-Type: text/xml",
               'SOAPAction: "%s#%s"' % (stype, action),
               "Connection: Close", "Cache-Control: no-cache", "Pragma: no-cache"]
    return post_bytes(igd, headers, std_body(action, stype, args), version, path)


def call(igd, action, args=(), **kw):
    req = std_request(igd, action, list(args), **kw)
    r, err, _ = exchange(igd, req)
    return req, r, err


def describe(req, r, err):
    return "request:\n%s\nanswer:\n%s" % (shown(req), err if r is None else r)


def mapping_args(ext, proto, iport, client, desc="shapes", lease="0"):
    return [("NewRemoteHost", ""), ("NewExternalPort", str(ext)), ("NewProtocol", proto),
            ("NewInternalPort", str(iport)), ("NewInternalClient", client),
            ("NewEnabled", "1"), ("NewPortMappingDescription", desc),
            ("NewLeaseDuration", lease)]


def own_addr(igd):
    c = Conn(igd.host, igd.port)
    a = c.local_addr()
    c.close()
    return a


def verify_mapping(igd, ext, proto, client, iport):
    """GetSpecificPortMappingEntry shows the mapping for client:iport."""
    req, r, err = call(igd, "GetSpecificPortMappingEntry",
                       [("NewRemoteHost", ""), ("NewExternalPort", str(ext)),
                        ("NewProtocol", proto.upper())])
    if r is None or r.status != 200:
        return False, describe(req, r, err)
    out, code = soap_result(r)
    ok = (code is None and out.get("NewInternalClient") == client and
          out.get("NewInternalPort") == str(iport))
    return ok, describe(req, r, err)


def delete_mapping(igd, ext, proto):
    return call(igd, "DeletePortMapping", [("NewRemoteHost", ""),
                                          ("NewExternalPort", str(ext)),
                                          ("NewProtocol", proto.upper())])


# --- subcommands --------------------------------------------------------------------

def cmd_discover(argv):
    st = argv[0] if argv else "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
    # miniupnpc/src/minissdpc.c ssdpDiscoverDevices writes this form
    msg = ("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: %s\r\n"
           "MAN: \"ssdp:discover\"\r\nMX: 2\r\n\r\n" % st).encode()
    deadline = time.time() + 4
    sent = 0
    while time.time() < deadline:
        if sent < 3:
            s.sendto(msg, SSDP_ADDR)
            sent += 1
        ready, _, _ = select.select([s], [], [], 0.5)
        if not ready:
            continue
        data, peer = s.recvfrom(4096)
        text = data.decode("latin-1")
        loc = re.search(r"(?im)^location:\s*(\S+)", text)
        st_hdr = re.search(r"(?im)^st:\s*(\S+)", text)
        if loc:
            print("location=%s" % loc.group(1))
            print("from=%s" % peer[0])
            print("st=%s" % (st_hdr.group(1) if st_hdr else ""))
            return 0
    print("no SSDP answer for %s" % st, file=sys.stderr)
    return 1


def cmd_call(argv, igd=None):
    igd = igd or Igd(argv[0])
    args = [tuple(a.split("=", 1)) for a in argv[2:]]
    req, r, err = call(igd, argv[1], args)
    res = {"status": r.status if r else None, "error": err}
    if r is not None:
        out, code = soap_result(r)
        res.update(out=out, code=code)
    print(json.dumps(res))
    return 0


def cmd_call_pupnp(argv):
    """cmd_call, but to pupnp's own HTTP server (the description's, where the event
    URL lives) instead of the advertised control URL: a client that builds the control
    URL from URLBase itself reaches pupnp's SOAP, which the daemon serves too."""
    igd = Igd(argv[0])
    igd.host, igd.port = igd.event_host, igd.event_port
    return cmd_call(argv, igd)


def cmd_gate_pupnp(argv):
    """SOAP to pupnp's own port goes through the daemon's XML gate (iwf/upnp_xml_gate.h):
    a body our reader refuses is answered 400 without libixml reading it; a valid one is
    run with the arguments as our reader read them (entities decoded). argv: LOCATION
    EXTERNAL_PORT INTERNAL_CLIENT. Prints one JSON object."""
    igd = Igd(argv[0])
    ext, client = argv[1], argv[2]
    pupnp = Igd(argv[0])
    pupnp.host, pupnp.port = pupnp.event_host, pupnp.event_port
    res = {}
    good = std_body("GetExternalIPAddress", igd.stype, [])
    # libixml takes the first two (an argument nested 40 elements deep, an overlong
    # UTF-8 sequence in an argument): without the gate pupnp would hand them to the
    # action, which answers with a SOAP fault (500), not 400
    deep = "<X>" + "<h>" * 40 + "</h>" * 40 + "</X>"
    bad = {"deep": good.replace("</u:GetExternalIPAddress>",
                                deep + "</u:GetExternalIPAddress>"),
           "overlong": good.encode().replace(b"</u:GetExternalIPAddress>",
                                             b"<X>\xc0\xaf</X></u:GetExternalIPAddress>"),
           "doctype": '<!DOCTYPE x [<!ENTITY e "v">]>' + good}
    for name, body in bad.items():
        headers = ["Host: %s:%d" % (pupnp.host, pupnp.port), "Content-Type: text/xml",
                   'SOAPAction: "%s#GetExternalIPAddress"' % igd.stype,
                   "Connection: Close"]
        r, err, _ = exchange(pupnp, post_bytes(pupnp, headers, body))
        res[name] = r.status if r is not None else err
        # the guard allows 4 connections at once to pupnp's port per host
        # (conntrack's ct count); a closed one still counts until its last
        # FIN is acknowledged, which may come after our next SYN
        time.sleep(0.5)
    desc = "gate &amp; &lt;ok&gt;"
    _, r, err = call(pupnp, "AddPortMapping",
                     mapping_args(ext, "TCP", ext, client, desc=desc))
    res["add"] = r.status if r is not None else err
    _, r, err = call(igd, "GetSpecificPortMappingEntry",
                     [("NewRemoteHost", ""), ("NewExternalPort", ext),
                      ("NewProtocol", "TCP")])
    res["desc"] = soap_result(r)[0].get("NewPortMappingDescription") if r else err
    _, r, err = call(pupnp, "DeletePortMapping",
                     [("NewRemoteHost", ""), ("NewExternalPort", ext),
                      ("NewProtocol", "TCP")])
    res["delete"] = r.status if r is not None else err
    print(json.dumps(res))
    return 0


def cmd_call_from(argv):
    """One SOAP call (IGD:1 WANIPConnection, /ctl/IPConn) from the source address SRC
    (- for the kernel's choice) on a connection of its own, whoever answers: argv SRC HOST
    PORT ACTION [NAME=VALUE...]. Prints JSON: status and errorCode of the answer (0 when
    none), the bytes received, the error (the exception's name, or "")."""
    src, host, port, action = argv[0], argv[1], int(argv[2]), argv[3]
    args = [tuple(a.split("=", 1)) for a in argv[4:]]
    body = std_body(action, WANIPC + "1", args).encode()
    req = ("POST /ctl/IPConn HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/xml\r\n"
           "SOAPAction: \"%s#%s\"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
           % (host, port, WANIPC + "1", action, len(body))).encode() + body
    res, data = {"error": ""}, b""
    s = socket.socket()
    s.settimeout(10)
    try:
        if src != "-":
            s.bind((src, 0))
        s.connect((host, port))
        s.sendall(req)
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError as e:
        res["error"] = type(e).__name__
    s.close()
    m = re.match(rb"HTTP/1\.[01] (\d+)", data)
    c = re.search(rb"<errorCode>(\d+)</errorCode>", data)
    x = re.search(rb"<NewExternalIPAddress>([^<]*)</NewExternalIPAddress>", data)
    res.update(bytes=len(data), status=int(m.group(1)) if m else 0,
               code=int(c.group(1)) if c else 0,
               external=x.group(1).decode("latin-1") if x else "")
    print(json.dumps(res))
    return 0


def cmd_subscribe(argv):
    igd = Igd(argv[0])
    callback = argv[1]
    # UDA 1.0 §4.1.2 (GENA): the subscription message, as pupnp's and miniupnpc's
    # control points write it
    req = ("SUBSCRIBE %s HTTP/1.1\r\nHOST: %s:%d\r\nCALLBACK: <%s>\r\n"
           "NT: upnp:event\r\nTIMEOUT: Second-300\r\n\r\n"
           % (igd.event_path, igd.event_host, igd.event_port, callback)).encode()
    r, err, _ = exchange(igd, req, Conn(igd.event_host, igd.event_port))
    res = {"status": r.status if r else None, "error": err,
           "sid": r.header("sid") if r else "", "timeout": r.header("timeout") if r else ""}
    print(json.dumps(res))
    return 0


def cmd_listen(argv):
    """Accept connections on ADDR:PORT; log each and answer NOTIFYs 200 (GENA)."""
    addr, port, out = argv[0], int(argv[1]), argv[2]
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(16)
    with open(out, "a") as log:
        while True:
            c, peer = srv.accept()
            log.write("CONNECT %s:%d\n" % peer)
            log.flush()
            c.settimeout(3)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                want = int(m.group(1)) if m else 0
                while len(body) < want:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                first = head.split(b"\r\n", 1)[0].decode("latin-1")
                sid = re.search(rb"(?im)^sid:\s*(\S+)", head)
                seq = re.search(rb"(?im)^seq:\s*(\d+)", head)
                log.write("REQUEST %s sid=%s seq=%s\n" % (
                    first, sid.group(1).decode() if sid else "",
                    seq.group(1).decode() if seq else ""))
                try:
                    root = ET.fromstring(body)
                    for prop in root.iter():
                        if len(prop) == 0 and prop.tag.split("}")[-1] not in ("property",):
                            log.write("VAR %s=%s\n" % (prop.tag.split("}")[-1],
                                                      (prop.text or "").strip()))
                except ET.ParseError:
                    pass
                log.flush()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                          b"Connection: close\r\n\r\n")
            except OSError:
                pass
            finally:
                c.close()


def cmd_probe_wan(argv):
    """From outside: does anything answer on the IGD's TCP port or SSDP?"""
    host, port = argv[0], int(argv[1])
    res = {"tcp_connect": False, "http_status": None, "ssdp_answer": ""}
    try:
        c = Conn(host, port, timeout=3)
        res["tcp_connect"] = True
        c.send(("GET /rootDesc.xml HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
                % (host, port)).encode())
        res["http_status"] = c.final_response().status
        c.close()
    except (OSError, EOFError, ValueError) as e:
        res["tcp_error"] = str(e)
    if res["tcp_connect"]:
        # the dangerous one: a control action from outside the LAN
        st = "urn:schemas-upnp-org:service:WANIPConnection:1"
        body = std_body("GetExternalIPAddress", st, []).encode()
        req = ("POST /ctl/IPConn HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/xml\r\n"
               "SOAPAction: \"%s#GetExternalIPAddress\"\r\nContent-Length: %d\r\n"
               "Connection: close\r\n\r\n" % (host, port, st, len(body))).encode() + body
        try:
            c = Conn(host, port, timeout=3)
            c.send(req)
            r = c.final_response()
            res["soap_status"] = r.status
            res["soap_answer"] = soap_result(r)
            c.close()
        except (OSError, EOFError, ValueError) as e:
            res["soap_error"] = str(e)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.sendto(b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
                 b"ST: ssdp:all\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\n\r\n", (host, 1900))
        data, peer = s.recvfrom(4096)
        res["ssdp_answer"] = data.decode("latin-1").split("\r\n")[0] + " from " + peer[0]
    except OSError:
        pass
    print(json.dumps(res))
    return 0


# --- client request shapes ----------------------------------------------------------

class Shapes:
    """Each shape: a request written as one deployed client writes it, then the check
    that the IGD understood it (an AddPortMapping is verified with a standard
    GetSpecificPortMappingEntry and deleted again)."""

    def __init__(self, igd, version, port_base, ext_ip):
        self.igd, self.version, self.ext_ip = igd, version, ext_ip
        self.port = port_base
        self.me = own_addr(igd)
        self.hostport = "%s:%d" % (igd.host, igd.port)

    def next_port(self):
        self.port += 1
        return self.port

    def expect_ip(self, name, req, r, err):
        out, code = soap_result(r) if r is not None else ({}, None)
        check("%s: GetExternalIPAddress answers 200 with the carrier's address %s"
              % (name, self.ext_ip),
              r is not None and r.status == 200 and code is None and
              out.get("NewExternalIPAddress") == self.ext_ip, describe(req, r, err))

    def expect_added(self, name, req, r, err, ext, proto, check_proto=None):
        ok = r is not None and r.status == 200 and soap_result(r)[1] is None
        check("%s: AddPortMapping answers 200" % name, ok, describe(req, r, err))
        if ok:
            seen, detail = verify_mapping(self.igd, ext, check_proto or proto, self.me, ext)
            check("%s: GetSpecificPortMappingEntry shows %s:%d for port %d"
                  % (name, self.me, ext, ext), seen, detail)
            dreq, dr, derr = delete_mapping(self.igd, ext, check_proto or proto)
            check("%s: DeletePortMapping answers 200" % name,
                  dr is not None and dr.status == 200, describe(dreq, dr, derr))

    def run(self):
        self.miniupnpc()
        self.miniupnpc_http10()
        self.libtorrent()
        self.goupnp()
        self.mono_nat()
        self.open_nat()
        self.weupnp()
        self.upnpclient()
        self.node_nat_upnp()
        self.jupnp()
        self.windows_typed()
        self.soappy()
        self.default_ns()
        self.soap_prefix()
        self.lowercase_proto()
        self.expect_continue()
        self.keep_alive()

    def miniupnpc(self):
        # miniupnpc/src/minisoap.c soapPostSubmit + miniupnpc.c simpleUPnPcommand2
        ext = self.next_port()
        req = std_request(self.igd, "AddPortMapping",
                          mapping_args(ext, "TCP", ext, self.me, "miniupnpc"))
        self.expect_added("miniupnpc", req, *exchange(self.igd, req)[:2], ext, "TCP")

    def miniupnpc_http10(self):
        # miniupnpc/src/miniupnpc.c simpleUPnPcommand: retried with HTTP/1.0
        req = std_request(self.igd, "GetExternalIPAddress", [], version="1.0")
        self.expect_ip("HTTP/1.0 (miniupnpc fallback)", req, *exchange(self.igd, req)[:2])

    def libtorrent(self):
        # libtorrent src/upnp.cpp upnp::post, get_ip_address, create_port_mapping:
        # "Soapaction:" spelling, charset="utf-8", "<?xml version=\"1.0\"?>\n", an empty
        # (not self-closing) argument-less action element
        st, ext = self.igd.stype, self.next_port()
        env = ('<?xml version="1.0"?>\n<s:Envelope xmlns:s="%s" s:encodingStyle="%s">'
               '<s:Body><u:%s xmlns:u="%s">%s</u:%s></s:Body></s:Envelope>')
        hdrs = lambda act: ["Host: %s" % self.hostport,
                            'Content-Type: text/xml; charset="utf-8"',
                            'Soapaction: "%s#%s"' % (st, act)]
        body = env % (SOAP_ENV, SOAP_ENC, "GetExternalIPAddress", st, "",
                      "GetExternalIPAddress")
        req = post_bytes(self.igd, hdrs("GetExternalIPAddress"), body)
        self.expect_ip("libtorrent (Soapaction:)", req, *exchange(self.igd, req)[:2])
        args = "".join("<%s>%s</%s>" % (k, v, k) for k, v in
                       mapping_args(ext, "TCP", ext, self.me, "libtorrent/2.0.9"))
        body = env % (SOAP_ENV, SOAP_ENC, "AddPortMapping", st, args, "AddPortMapping")
        req = post_bytes(self.igd, hdrs("AddPortMapping"), body)
        self.expect_added("libtorrent", req, *exchange(self.igd, req)[:2], ext, "TCP")

    def goupnp(self):
        # huin/goupnp soap/soap.go PerformAction as of 914072f (2013) until 5528f2e
        # ("soap: quote action names in header", 2015): SOAPACTION unquoted; still in
        # programs that vendored goupnp then. CONTENT-TYPE upper case, encoding="utf-8"
        # declaration; Go's net/http adds User-Agent and Accept-Encoding
        st, ext = self.igd.stype, self.next_port()
        args = "".join("<%s>%s</%s>" % (k, v, k) for k, v in
                       mapping_args(ext, "UDP", ext, self.me, "goupnp"))
        body = ('<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="%s" '
                's:encodingStyle="%s"><s:Body><u:AddPortMapping xmlns:u="%s">%s'
                '</u:AddPortMapping></s:Body></s:Envelope>' % (SOAP_ENV, SOAP_ENC, st, args))
        req = post_bytes(self.igd, ["Host: %s" % self.hostport,
                                    "User-Agent: Go-http-client/1.1",
                                    "Content-Length: %d" % len(body),
                                    'CONTENT-TYPE: text/xml; charset="utf-8"',
                                    "SOAPACTION: %s#AddPortMapping" % st,
                                    "Accept-Encoding: gzip"], body)
        self.expect_added("goupnp before 2015 (SOAPACTION unquoted)", req,
                          *exchange(self.igd, req)[:2], ext, "UDP")
        # huin/goupnp soap/soap.go since 5528f2e: the same, SOAPACTION quoted
        ext = self.next_port()
        args = "".join("<%s>%s</%s>" % (k, v, k) for k, v in
                       mapping_args(ext, "UDP", ext, self.me, "goupnp"))
        body = ('<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="%s" '
                's:encodingStyle="%s"><s:Body><u:AddPortMapping xmlns:u="%s">%s'
                '</u:AddPortMapping></s:Body></s:Envelope>' % (SOAP_ENV, SOAP_ENC, st, args))
        req = post_bytes(self.igd, ["Host: %s" % self.hostport,
                                    "User-Agent: Go-http-client/1.1",
                                    "Content-Length: %d" % len(body),
                                    'CONTENT-TYPE: text/xml; charset="utf-8"',
                                    'SOAPACTION: "%s#AddPortMapping"' % st,
                                    "Accept-Encoding: gzip"], body)
        self.expect_added("goupnp (SOAPACTION quoted)", req,
                          *exchange(self.igd, req)[:2], ext, "UDP")

    def mono_nat(self):
        # alanmcgovern/Mono.Nat Mono.Nat/Upnp/Messages/UpnpMessage.cs CreateRequest:
        # no XML declaration, body ends "\r\n\r\n", quoted SOAPACTION; .NET's
        # HttpWebRequest adds "Expect: 100-continue" to a POST (KeepAlive = false)
        st = self.igd.stype
        body = ('<s:Envelope xmlns:s="%s" s:encodingStyle="%s"><s:Body>'
                '<u:GetExternalIPAddress xmlns:u="%s"></u:GetExternalIPAddress>'
                '</s:Body></s:Envelope>\r\n\r\n' % (SOAP_ENV, SOAP_ENC, st))
        req = post_bytes(self.igd, ['Content-Type: text/xml; charset="utf-8"',
                                    'SOAPACTION: "%s#GetExternalIPAddress"' % st,
                                    "Host: %s" % self.hostport, "Connection: Close"],
                         body)
        self.expect_ip("Mono.Nat (no XML declaration)", req, *exchange(self.igd, req)[:2])

    def open_nat(self):
        # lontivero/Open.NAT Open.Nat/Upnp/SoapClient.cs BuildMessageBody: blanks
        # inside the envelope tag and before/after the action element
        st, ext = self.igd.stype, self.next_port()
        args = "".join("<%s>%s</%s>" % (k, v, k) for k, v in
                       mapping_args(ext, "TCP", ext, self.me, "Open.NAT"))
        body = ('<s:Envelope    xmlns:s="%s"    s:encodingStyle="%s"><s:Body>'
                '   <u:AddPortMapping xmlns:u="%s">%s   </u:AddPortMapping>'
                '</s:Body></s:Envelope>\r\n\r\n' % (SOAP_ENV, SOAP_ENC, st, args))
        req = post_bytes(self.igd, ['Content-Type: text/xml; charset="utf-8"',
                                    'SOAPACTION: "%s#AddPortMapping"' % st,
                                    "Host: %s" % self.hostport, "Connection: Close"],
                         body)
        self.expect_added("Open.NAT (blanks around the action)", req,
                          *exchange(self.igd, req)[:2], ext, "TCP")

    def weupnp(self):
        # bitletorg/weupnp GatewayDevice.java simpleUPnPcommand: SOAP-ENV: and m:
        # prefixes, "<?xml version=\"1.0\"?>\r\n", Content-Type without charset; the
        # arguments come out of a HashMap, i.e. not in SCPD order
        st, ext = self.igd.stype, self.next_port()
        args = dict(mapping_args(ext, "UDP", ext, self.me, "weupnp"))
        order = ["NewInternalClient", "NewEnabled", "NewExternalPort", "NewRemoteHost",
                 "NewProtocol", "NewInternalPort", "NewPortMappingDescription",
                 "NewLeaseDuration"]
        inner = "".join("<%s>%s</%s>" % (k, args[k], k) for k in order)
        body = ('<?xml version="1.0"?>\r\n<SOAP-ENV:Envelope xmlns:SOAP-ENV="%s" '
                'SOAP-ENV:encodingStyle="%s"><SOAP-ENV:Body><m:AddPortMapping xmlns:m="%s">'
                '%s</m:AddPortMapping></SOAP-ENV:Body></SOAP-ENV:Envelope>'
                % (SOAP_ENV, SOAP_ENC, st, inner))
        req = post_bytes(self.igd, ["Content-Type: text/xml",
                                    'SOAPAction: "%s#AddPortMapping"' % st,
                                    "Connection: Close", "User-Agent: Java/17.0.8",
                                    "Host: %s" % self.hostport,
                                    "Accept: text/html, image/gif, image/jpeg, *; q=.2, "
                                    "*/*; q=.2"], body)
        self.expect_added("weupnp (SOAP-ENV:/m:, arguments out of order)", req,
                          *exchange(self.igd, req)[:2], ext, "UDP")

    def upnpclient(self):
        # flyte/upnpclient upnpclient/soap.py SOAP.call with lxml: the declaration in
        # single quotes, SOAP-ENV: and m:, and lxml writes an action without arguments
        # as a self-closing element
        st = self.igd.stype
        body = ("<?xml version='1.0' encoding='utf-8'?>\n<SOAP-ENV:Envelope "
                'xmlns:SOAP-ENV="%s" SOAP-ENV:encodingStyle="%s"><SOAP-ENV:Body>'
                '<m:GetExternalIPAddress xmlns:m="%s"/></SOAP-ENV:Body></SOAP-ENV:Envelope>'
                % (SOAP_ENV, SOAP_ENC, st))
        req = post_bytes(self.igd, ["Host: %s" % self.hostport,
                                    "User-Agent: python-requests/2.28.1",
                                    "Accept-Encoding: gzip, deflate", "Accept: */*",
                                    "Connection: keep-alive",
                                    'SOAPAction: "%s#GetExternalIPAddress"' % st,
                                    "Content-Type: text/xml"], body)
        self.expect_ip("python upnpclient (self-closing <m:GetExternalIPAddress/>)", req,
                       *exchange(self.igd, req)[:2])

    def node_nat_upnp(self):
        # indutny/node-nat-upnp lib/nat-upnp/device.js Device.run: no newline after the
        # declaration, SOAPAction via JSON.stringify (quoted), Connection: close
        st, ext = self.igd.stype, self.next_port()
        args = "".join("<%s>%s</%s>" % (k, v, k) for k, v in
                       mapping_args(ext, "UDP", ext, self.me, "node:nat-upnp", "0"))
        body = ('<?xml version="1.0"?><s:Envelope xmlns:s="%s" s:encodingStyle="%s">'
                '<s:Body><u:AddPortMapping xmlns:u="%s">%s</u:AddPortMapping></s:Body>'
                '</s:Envelope>' % (SOAP_ENV, SOAP_ENC, st, args))
        req = post_bytes(self.igd, ["host: %s" % self.hostport,
                                    'Content-Type: text/xml; charset="utf-8"',
                                    "Content-Length: %d" % len(body),
                                    "Connection: close",
                                    'SOAPAction: "%s#AddPortMapping"' % st], body)
        self.expect_added("node nat-upnp", req, *exchange(self.igd, req)[:2], ext, "UDP")

    def jupnp(self):
        # jupnp/jupnp org/jupnp/transport/impl/SOAPActionProcessorImpl.java with
        # org/jupnp/model/XMLUtil.java documentToString: standalone="yes", the
        # encodingStyle attribute before xmlns:s, "<u:Action xmlns:u=.../>" when there
        # are no arguments; header name SOAPACTION
        st = self.igd.stype
        body = ('<?xml version="1.0" encoding="utf-8" standalone="yes"?><s:Envelope '
                's:encodingStyle="%s" xmlns:s="%s"><s:Body><u:GetStatusInfo '
                'xmlns:u="%s"/></s:Body></s:Envelope>' % (SOAP_ENC, SOAP_ENV, st))
        req = post_bytes(self.igd, ['Content-Type: text/xml;charset="utf-8"',
                                    'SOAPACTION: "%s#GetStatusInfo"' % st,
                                    "User-Agent: Linux/6.1 UPnP/1.0 jUPnP/3.0.0",
                                    "Host: %s" % self.hostport], body)
        r, err, _ = exchange(self.igd, req)
        out, code = soap_result(r) if r is not None else ({}, None)
        check("jUPnP (self-closing <u:GetStatusInfo/>): 200, Connected",
              r is not None and r.status == 200 and code is None and
              out.get("NewConnectionStatus") == "Connected", describe(req, r, err))

    def windows_typed(self):
        # The Windows UPnP control point types every argument with the
        # urn:schemas-microsoft-com:datatypes attribute dt:dt, as documented for its
        # SOAP requests in [MS-RXAD] §3.1.4.2.1.1 (soapenv: prefix there)
        st, ext = self.igd.stype, self.next_port()
        types = {"NewExternalPort": "ui2", "NewInternalPort": "ui2", "NewEnabled": "boolean",
                 "NewLeaseDuration": "ui4"}
        inner = "".join('<%s xmlns:dt="urn:schemas-microsoft-com:datatypes" dt:dt="%s">%s'
                        '</%s>' % (k, types.get(k, "string"), v, k) for k, v in
                        mapping_args(ext, "TCP", ext, self.me, "Windows"))
        body = ('<?xml version="1.0"?>\r\n<soapenv:Envelope xmlns:soapenv="%s" '
                'soapenv:encodingStyle="%s"><soapenv:Body><m:AddPortMapping xmlns:m="%s">'
                '%s</m:AddPortMapping></soapenv:Body></soapenv:Envelope>'
                % (SOAP_ENV, SOAP_ENC, st, inner))
        req = post_bytes(self.igd, ["Cache-Control: no-cache", "Connection: Close",
                                    "Pragma: no-cache",
                                    'Content-Type: text/xml; charset="utf-8"',
                                    "User-Agent: Microsoft-Windows/10.0 UPnP/1.0",
                                    'SOAPAction: "%s#AddPortMapping"' % st,
                                    "Host: %s" % self.hostport], body)
        self.expect_added("Windows-typed arguments (dt:dt, soapenv:)", req,
                          *exchange(self.igd, req)[:2], ext, "TCP")

    def soappy(self):
        # SOAPpy/SOAPBuilder.py SOAPBuilder.build (the library of the early UPnP IGD
        # scripts): pretty-printed, one element per line, the envelope's attributes on
        # their own lines, ns1: for the service, SOAP-ENC:root, xsi:type-typed arguments
        st, ext = self.igd.stype, self.next_port()
        lines = []
        for k, v in mapping_args(ext, "UDP", ext, self.me, "SOAPpy"):
            t = "integer" if v.isdigit() else "string"
            lines.append('<%s xsi:type="xsd:%s">%s</%s>\n' % (k, t, v, k))
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<SOAP-ENV:Envelope\n'
                '  SOAP-ENV:encodingStyle="%s"\n  xmlns:SOAP-ENC="%s"\n'
                '  xmlns:xsi="http://www.w3.org/1999/XMLSchema-instance"\n'
                '  xmlns:SOAP-ENV="%s"\n  xmlns:xsd="http://www.w3.org/1999/XMLSchema"\n>\n'
                '<SOAP-ENV:Body>\n<ns1:AddPortMapping xmlns:ns1="%s" SOAP-ENC:root="1">\n'
                '%s</ns1:AddPortMapping>\n</SOAP-ENV:Body>\n</SOAP-ENV:Envelope>\n'
                % (SOAP_ENC, SOAP_ENC, SOAP_ENV, st, "".join(lines)))
        req = post_bytes(self.igd, ["Host: %s" % self.hostport,
                                    "User-agent: SOAPpy 0.12.22 (pywebsvcs.sf.net)",
                                    'Content-type: text/xml; charset="UTF-8"',
                                    'SOAPAction: "%s#AddPortMapping"' % st], body,
                         version="1.0")
        self.expect_added("SOAPpy (pretty-printed, xsi:type, ns1:)", req,
                          *exchange(self.igd, req)[:2], ext, "UDP")

    def default_ns(self):
        # huin/goupnp soap/soap.go encodeRequestAction comment: Go's encoding/xml wrote
        # the envelope with a default xmlns (no prefix at all) and re-declared the
        # default namespace on the action element
        st, ext = self.igd.stype, self.next_port()
        inner = "".join("<%s>%s</%s>" % (k, v, k) for k, v in
                        mapping_args(ext, "TCP", ext, self.me, "default-ns"))
        body = ('<Envelope xmlns="%s" encodingStyle="%s"><Body>'
                '<AddPortMapping xmlns="%s">%s</AddPortMapping></Body></Envelope>'
                % (SOAP_ENV, SOAP_ENC, st, inner))
        req = post_bytes(self.igd, ["Host: %s" % self.hostport,
                                    'Content-Type: text/xml; charset="utf-8"',
                                    'SOAPAction: "%s#AddPortMapping"' % st], body)
        self.expect_added("no prefixes (default xmlns)", req,
                          *exchange(self.igd, req)[:2], ext, "TCP")

    def soap_prefix(self):
        # .NET SoapHttpClientProtocol writes soap: for the envelope and a default
        # xmlns on the method element (the ASMX proxies of Windows apps)
        st = self.igd.stype
        body = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope '
                'xmlns:soap="%s" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                'xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body>'
                '<GetExternalIPAddress xmlns="%s" /></soap:Body></soap:Envelope>'
                % (SOAP_ENV, st))
        req = post_bytes(self.igd, ['Content-Type: text/xml; charset=utf-8',
                                    'SOAPAction: "%s#GetExternalIPAddress"' % st,
                                    "Host: %s" % self.hostport, "Expect: 100-continue",
                                    "Connection: Keep-Alive"], body)
        self.expect_ip("soap: prefix, default-namespace action", req,
                       *exchange(self.igd, req)[:2])

    def lowercase_proto(self):
        # miniupnpd upnpredirect.c proto_atoi compares with strcasecmp, so clients
        # passing "tcp"/"udp" work on miniupnpd routers (spec/iwf.md §3.5 "a client
        # that miniupnpd serves must be served")
        for proto in ("tcp", "udp"):
            ext = self.next_port()
            req = std_request(self.igd, "AddPortMapping",
                              mapping_args(ext, proto, ext, self.me, "lower-case"))
            self.expect_added("lower-case protocol \"%s\"" % proto, req,
                              *exchange(self.igd, req)[:2], ext, proto, proto.upper())

    def expect_continue(self):
        # .NET HttpWebRequest (Mono.Nat, Open.NAT): "Expect: 100-continue", then it
        # waits up to 350 ms for "100 Continue" before it sends the body anyway
        st, ext = self.igd.stype, self.next_port()
        body = std_body("AddPortMapping", st,
                        mapping_args(ext, "TCP", ext, self.me, "expect-100")).encode()
        head = post_bytes(self.igd, ['Content-Type: text/xml; charset="utf-8"',
                                     'SOAPACTION: "%s#AddPortMapping"' % st,
                                     "Host: %s" % self.hostport,
                                     "Content-Length: %d" % len(body),
                                     "Expect: 100-continue", "Connection: Close"], b"")
        r, err, conn = None, "", None
        interim = ""
        try:
            conn = Conn(self.igd.host, self.igd.port)
            conn.send(head)
            try:
                first = conn.read_response(timeout=1.0)
                if first.status == 100:
                    interim = "100 Continue"
                else:
                    r = first       # answered without the body: wrong
            except socket.timeout:
                interim = "no interim answer within 1 s"
            if r is None:
                conn.send(body)
                r = conn.final_response()
        except (OSError, EOFError, ValueError) as e:
            err = "%s: %s" % (type(e).__name__, e)
        finally:
            if conn is not None:
                conn.close()
        print("  # Expect: 100-continue: %s" % interim)
        self.expect_added("Expect: 100-continue", head + body, r, err, ext, "TCP")

    def keep_alive(self):
        # python-requests (flyte/upnpclient) and Go net/http (goupnp) reuse one
        # connection: the second request goes on the same socket unless the server
        # said "Connection: close" on the first answer
        st = self.igd.stype
        req = post_bytes(self.igd, ["Host: %s" % self.hostport, "Connection: keep-alive",
                                    'SOAPAction: "%s#GetExternalIPAddress"' % st,
                                    "Content-Type: text/xml"],
                         std_body("GetExternalIPAddress", st, []))
        r1, err, conn = exchange(self.igd, req, conn=Conn(self.igd.host, self.igd.port))
        self.expect_ip("keep-alive: first request", req, r1, err)
        if r1 is None:
            conn.close()
            return
        # urllib3 (is_connection_dropped) and Go's transport (its background read)
        # notice a connection the server closed and open a new one; a connection
        # left open must answer the second request
        time.sleep(0.2)
        ready, _, _ = select.select([conn.sock], [], [], 0)
        dropped = bool(ready) and not conn._fill(0.5)
        if "close" in r1.header("connection").lower() or dropped:
            print("NOTE - keep-alive: the IGD closed the connection after its answer%s"
                  % ("" if "close" in r1.header("connection").lower() else
                     " without \"Connection: close\" in a %s answer (RFC 9112 §9.6 "
                     "SHOULD)" % r1.version))
            conn.close()
            conn = Conn(self.igd.host, self.igd.port)
            how = "on a new connection, as the clients do"
        else:
            how = "on the same connection"
        r2, err2, conn = exchange(self.igd, req, conn=conn)
        conn.close()
        self.expect_ip("keep-alive: second request %s" % how, req, r2, err2)


# --- abuse ---------------------------------------------------------------------------

def cmd_abuse(argv):
    """spec/iwf.md X-05: oversized and broken requests get an error, and the IGD keeps
    serving: after each one a valid GetExternalIPAddress must work."""
    igd = Igd(argv[0])
    ext_ip = argv[1] if len(argv) > 1 else None
    st = igd.stype
    me = own_addr(igd)
    hostport = "Host: %s:%d" % (igd.host, igd.port)
    act = lambda a: ['SOAPAction: "%s#%s"' % (st, a), "Content-Type: text/xml", hostport,
                     "Connection: close"]

    def still_serving(after):
        req, r, err = call(igd, "GetExternalIPAddress")
        out, code = soap_result(r) if r is not None else ({}, None)
        check("still serving after %s" % after,
              r is not None and r.status == 200 and code is None and
              (ext_ip is None or out.get("NewExternalIPAddress") == ext_ip),
              describe(req, r, err))

    def expect_error(name, req, codes=None, http=None, served_ok=False):
        r, err, _ = exchange(igd, req)
        if r is None:
            # closing the connection without an answer is an acceptable refusal of
            # garbage, but only for malformed HTTP, never for a well-formed SOAP error;
            # no answer at all (a worker held until our timeout) is never acceptable
            ok = codes is None and "timed out" not in err
            check("%s: refused (connection closed: %s)" % (name, err), ok,
                  describe(req, r, err))
        elif served_ok and r.status == 200:
            check("%s: answered correctly (200)" % name,
                  soap_result(r)[0].get("NewExternalIPAddress") == ext_ip,
                  describe(req, r, err))
        else:
            out, code = soap_result(r)
            if codes is not None:
                ok = r.status == 500 and code in codes
                want = "HTTP 500 with UPnP error %s" % "/".join(map(str, codes))
            else:
                ok = r.status >= 400 and (http is None or r.status in http)
                want = "an HTTP error" + (" %s" % "/".join(map(str, http)) if http else "")
            check("%s: %s (got %d%s)" % (name, want, r.status,
                                        "" if code is None else " / %d" % code),
                  ok, describe(req, r, err))
        still_serving(name)

    big = "x" * 6000
    body = std_body("AddPortMapping", st,
                    mapping_args(41000, "TCP", 41000, me, big))
    expect_error("a 6000-byte SOAP body (> UPNP_MAX_CONTENT 4096)",
                 post_bytes(igd, act("AddPortMapping"), body))
    expect_error("a Content-Length of 100000 with a short body",
                 post_bytes(igd, act("GetExternalIPAddress") + ["Content-Length: 100000"],
                            std_body("GetExternalIPAddress", st, [])))
    expect_error("truncated XML",
                 post_bytes(igd, act("GetExternalIPAddress"),
                            std_body("GetExternalIPAddress", st, [])[:90]))
    expect_error("garbage body",
                 post_bytes(igd, act("GetExternalIPAddress"), os.urandom(700)))
    expect_error("an envelope whose Body holds no action",
                 post_bytes(igd, act("GetExternalIPAddress"),
                            '<?xml version="1.0"?><s:Envelope xmlns:s="%s"><s:Body>'
                            '</s:Body></s:Envelope>' % SOAP_ENV))
    expect_error("an unknown action: 401 Invalid Action",
                 std_request(igd, "GetTheMoon", []), codes=(401,))
    expect_error("AddPortMapping without NewInternalPort: 402 Invalid Args",
                 std_request(igd, "AddPortMapping",
                             [a for a in mapping_args(41001, "TCP", 41001, me)
                              if a[0] != "NewInternalPort"]), codes=(402,))
    expect_error("GetSpecificPortMappingEntry with NewExternalPort=70000: 402",
                 std_request(igd, "GetSpecificPortMappingEntry",
                             [("NewRemoteHost", ""), ("NewExternalPort", "70000"),
                              ("NewProtocol", "TCP")]), codes=(402,))
    expect_error("AddPortMapping with protocol SCTP: 402",
                 std_request(igd, "AddPortMapping",
                             mapping_args(41002, "SCTP", 41002, me)), codes=(402,))
    # a huge header may be refused or served; it must not hang or kill the server
    expect_error("a 65536-byte header line",
                 post_bytes(igd, act("GetExternalIPAddress") + ["X-Big: " + "y" * 65536],
                            std_body("GetExternalIPAddress", st, [])), served_ok=True)
    expect_error("a request line that is not HTTP",
                 b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200) +
                 b"\r\n\r\n")
    expect_error("a SOAPAction for another service type",
                 post_bytes(igd, ['SOAPAction: "urn:schemas-upnp-org:service:'
                                  'ContentDirectory:1#Browse"', "Content-Type: text/xml",
                                  hostport], std_body("Browse",
                                                      "urn:schemas-upnp-org:service:"
                                                      "ContentDirectory:1", [])))
    # connections that send half a request and stall must not starve the server:
    # one host may hold 8 of its 32 connections (UPNP_HTTP_MAX_CONNS_PER_HOST,
    # iwf/upnp_http.h; issue 8). With 7 stalled the host's next request is still
    # served; its connections beyond 8 are reset at once, without an answer.
    share = 8
    stalled = []
    for _ in range(share - 1):
        try:
            c = Conn(igd.host, igd.port, timeout=3)
            c.send(b"POST " + igd.control_path.encode() + b" HTTP/1.1\r\nHost: x\r\n")
            stalled.append(c)
        except OSError:
            break
    still_serving("%d connections stalled mid-header" % len(stalled))
    # what the server does with a half request: hold it (no answer within 1 s:
    # "TimeoutError"), or close it unanswered ("" or a reset)
    beyond = []
    for _ in range(3):
        c = None
        try:
            # the connect too: a refusal (a reset right after the handshake) may
            # already show there (seen once as BrokenPipeError escaping the test)
            c = Conn(igd.host, igd.port, timeout=3)
            c.send(b"POST " + igd.control_path.encode() + b" HTTP/1.1\r\nHost: x\r\n")
            c.sock.settimeout(1)
            data = c.sock.recv(4096).decode(errors="replace")
        except OSError as e:
            data = type(e).__name__
        beyond.append(data)
        if c is not None:
            stalled.append(c)
    check("the host's 8th connection is held, the two beyond its share are closed "
          "unanswered", beyond[0] == "TimeoutError" and
          all(d in ("", "ConnectionResetError", "BrokenPipeError") for d in beyond[1:]),
          repr(beyond))
    for c in stalled:
        c.close()
    still_serving("the stalled connections closed")
    return 1 if FAILS else 0


def cmd_shapes(argv):
    igd = Igd(argv[0])
    Shapes(igd, int(argv[1]), int(argv[2]), argv[3]).run()
    return 1 if FAILS else 0


def main():
    cmds = {"discover": cmd_discover, "call": cmd_call, "call-pupnp": cmd_call_pupnp, "gate-pupnp": cmd_gate_pupnp, "call-from": cmd_call_from, "shapes": cmd_shapes,
            "abuse": cmd_abuse, "listen": cmd_listen, "subscribe": cmd_subscribe,
            "probe-wan": cmd_probe_wan}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return cmds[sys.argv[1]](sys.argv[2:])
    except (RuntimeError, OSError, ET.ParseError, IndexError) as e:
        print("FAIL - %s: %s: %s" % (sys.argv[1], type(e).__name__, e))
        traceback.print_exc(file=sys.stdout)   # where, for a failure seen once
        return 2


if __name__ == "__main__":
    sys.exit(main())
