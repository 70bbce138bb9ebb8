#!/usr/bin/python3
"""upnp_python.py EXT_IP PORT VERSION - the python3-miniupnpc binding sequence.

The sequence the binding's own examples (miniupnpc/pymoduletest3.py) and the apps built
on it run: discover, selectigd, externalipaddress, addportmapping,
getspecificportmapping, the getgenericportmapping loop, deleteportmapping.

selectigd (miniupnpc 2.2.4 src/miniupnpcmodule.c UPnP_selectigd) returns the control URL
for any non-zero UPNP_GetValidIGD result, so an IGD whose external address is a
documentation (reserved) address is still selected (state 2, "not connected?"); only
"nothing found" raises. Prints "ok - ..." / "FAIL - ..."; exit 1 on a failure.
"""

import sys

import miniupnpc

FAILS = 0


def check(desc, cond, detail=""):
    global FAILS
    print("%s - %s%s" % ("ok" if cond else "FAIL", desc,
                         "" if cond or not detail else " (%s)" % detail), flush=True)
    if not cond:
        FAILS += 1
    return cond


def main():
    ext_ip, port, version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    u = miniupnpc.UPnP()
    u.discoverdelay = 2000
    try:
        n = u.discover()
    except Exception as e:      # the binding raises a bare Exception
        check("discover() finds devices", False, e)
        return 1
    check("discover() finds at least one device (%d)" % n, n >= 1)
    try:
        control = u.selectigd()
    except Exception as e:
        check("selectigd() selects the IGD", False, e)
        return 1
    check("selectigd() returns our WANIPConnection control URL (%s)" % control,
          control.startswith("http://192.0.2.1:"))
    check("lanaddr is the LAN host's own address (%s)" % u.lanaddr,
          u.lanaddr == "192.0.2.10")
    ip = u.externalipaddress()
    check("externalipaddress() is the carrier's %s (%s)" % (ext_ip, ip), ip == ext_ip)
    status = u.statusinfo()
    check("statusinfo() says Connected (%s)" % (status,), status[0] == "Connected")
    ctype = u.connectiontype()
    check("connectiontype() is IP_Routed (%s)" % ctype, ctype == "IP_Routed")

    for proto in ("TCP", "UDP"):
        try:
            ok = u.addportmapping(port, proto, u.lanaddr, port,
                                  "pcp-iwfd python test %s" % proto, "")
        except Exception as e:
            ok = e
        check("addportmapping(%d, %s) succeeds" % (port, proto), ok is True, ok)
        try:
            spec = u.getspecificportmapping(port, proto)
        except Exception as e:
            spec = e
        check("getspecificportmapping(%d, %s) shows %s:%d (%s)"
              % (port, proto, u.lanaddr, port, spec),
              isinstance(spec, tuple) and spec[0] == u.lanaddr and spec[1] == port, spec)
        if isinstance(spec, tuple):
            check("its lease: 0 (IGDv1 infinite) or <= 604800 in IGDv2 (%s)" % spec[4],
                  spec[4] == 0 if version == 1 else 0 < spec[4] <= 604800)

    found = []
    i = 0
    while i < 64:
        try:
            entry = u.getgenericportmapping(i)
        except Exception:
            entry = None
        if entry is None:
            break
        found.append(entry)
        i += 1
    print("  getgenericportmapping: %s" % found)
    mine = [e for e in found if e[0] == port and e[2][0] == u.lanaddr]
    check("the getgenericportmapping loop ends and lists both mappings",
          i < 64 and sorted(e[1] for e in mine) == ["TCP", "UDP"], found)

    for proto in ("TCP", "UDP"):
        try:
            ok = u.deleteportmapping(port, proto)
        except Exception as e:
            ok = e
        check("deleteportmapping(%d, %s) succeeds" % (port, proto), ok is True, ok)
        try:
            spec = u.getspecificportmapping(port, proto)
        except Exception as e:
            spec = e
        check("afterwards getspecificportmapping(%d, %s) finds nothing" % (port, proto),
              spec is None, spec)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
