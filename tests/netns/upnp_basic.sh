#!/bin/bash
# upnp_basic.sh BUILD_DIR VERSION - the UPnP IGD front-end (spec/iwf.md §3-§5, docs/upnp.md)
# with the real upnpc (miniupnpc 2.2.4) from a LAN host behind double NAT, the real carrier
# and real inbound traffic:
#
#   lan (upnpc) --SSDP/SOAP--> pcp-iwfd on gw (upnp_igd_version = VERSION) --PCP MAP-->
#   miniupnpd on cgn --- inet (sends the traffic; a GENA callback listener)
#
# Checks: the binary exports connect() (the CallStranger guard, upnp_guard.c); SSDP finds the
# IGD of the configured version; `upnpc -i -s` shows the carrier's address as
# ExternalIPAddress; `upnpc -i -a` for TCP and UDP makes a mapping that pcp-iwfctl lists
# (origin upnp, the carrier's port), that the carrier holds and through which a connection /
# a datagram from the internet reaches the LAN host; `-l` lists them; `-d` removes them from
# the gateway and the carrier; `-r` maps for the host itself. IGD:2: `-n` (AddAnyPortMapping)
# gets another port when the one asked for is taken, `-L` (GetListOfPortMappings) lists,
# `-N` (DeletePortMappingRange) deletes; IGD:1: AddAnyPortMapping is unknown (401).
# Eventing and CallStranger (CVE-2020-12695, X-04): a SUBSCRIBE with a LAN callback gets the
# initial NOTIFY and one when PortMappingNumberOfEntries changes; a SUBSCRIBE from the LAN
# with a callback on the internet host (which the gateway can reach) never produces a
# connection there, and the daemon logs the refusal. The daemon stops cleanly (no sanitizer
# report in an IWFD_SANITIZE build).
# Exit: 0 pass, 1 fail, 77 skip.

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"

build="${1:-}"
version="${2:-1}"
daemon="$build/pcp-iwfd"
ctl="$build/pcp-iwfctl"
if [ -z "$build" ] || [ ! -x "$daemon" ] || [ ! -x "$ctl" ]; then
	echo "SKIP: no pcp-iwfd / pcp-iwfctl in build directory '${build}'" >&2
	exit 77
fi
case $version in 1 | 2) ;; *) echo "usage: $0 BUILD_DIR 1|2" >&2; exit 2 ;; esac
lab_skip_unless_ready upnpc nm
export LAB_PREFIX="${LAB_PREFIX:-upnp$version-$$}"
lab_hard_timeout 280 "$0" "$@"

lan=$LAB_LAN_HOST_IP
ext=$LAB_CGN_EXT_IP

gwctl() { lab_exec gw "$ctl" -s "$LAB_TMP/ctl.sock" "$@"; }
# the gateway's mapping for PROTO INTPORT as "address port origin internal_address"
gw_entry() {
	gwctl list --json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    if (m["protocol"] == sys.argv[1] and m["internal_port"] == int(sys.argv[2]) and
            m["internal_address"] == sys.argv[3]):
        print(m["external_address"], m["external_port"], m["origin"], m["internal_address"])' \
		"$1" "$2" "${3:-$lan}"
}
carrier_has_port() { lab_exec cgn nft list ruleset | grep 'dnat ip to' | grep -q "dport $1 "; }

# upnpc from the LAN host (-i: the carrier's address is a documentation one, which
# UPNP_GetValidIGD calls reserved, spec/iwf.md §6.1); output to $LAB_TMP/NAME.out
upnpc_run() {
	local name=$1
	shift
	lab_exec lan timeout 30 upnpc -i "$@" >"$LAB_TMP/$name.out" 2>&1
	echo $? >"$LAB_TMP/$name.rc"
	grep -v -e '^upnpc : ' -e '(c) 2005' -e '^Go to http' -e '^for more information' \
		-e '^ *$' "$LAB_TMP/$name.out" | sed "s/^/  [$name] /" | tail -8
}
rc_is() { [ "$(cat "$LAB_TMP/$1.rc")" = "$2" ]; }
has() { grep -q -e "$2" "$LAB_TMP/$1.out"; }
# the external port of "external ADDR:PORT PROTO is redirected to internal ..."
redirected_port() {
	sed -n "s/^external $ext:\([0-9]*\) .* is redirected to internal .*/\1/p" \
		"$LAB_TMP/$1.out" | tail -1
}

# reach PROTO EXTPORT INTPORT: a line from the internet host to the carrier's address and
# EXTPORT arrives at a listener on the LAN host's INTPORT
reach() { lab_reach inet "$1" "$ext" "$2" lan "$3"; }
unreachable() { lab_unreachable inet "$1" "$ext" "$2" lan "$3"; }

lab_say "the binary exports connect(): libupnp's calls land in the CallStranger guard"
lab_log nm -D "$daemon" | grep -w connect
lab_check "pcp-iwfd defines and exports connect" \
	eval "nm -D '$daemon' | grep -Eq '^[0-9a-f]+ T connect$'"

lab_up || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }
# SSDP: upnpc's M-SEARCH goes to 239.255.255.250 out of the LAN interface
lab_log lab_exec lan ip route add 239.0.0.0/8 dev "$LAB_LAN_IF"

conf="$LAB_TMP/pcp-iwfd.conf"
cat >"$conf" <<-EOF
lan_interface = $LAB_GW_LAN_IF
wan_interface = $LAB_GW_WAN_IF
upstream_server = $LAB_CGN_IP
upnp = yes
upnp_igd_version = $version
upnp_friendly_name = lab gateway
natpmp = no
pcp = no
state_file = $LAB_TMP/state
control_socket = $LAB_TMP/ctl.sock
EOF
lab_say "pcp-iwfd on the gateway with UPnP IGD:$version only"
sed 's/^/    /' "$conf"
# shellcheck disable=SC2046 # lab_upnp_env: pupnp's own leak suppressed in an ASan build
lab_bg gw "$LAB_TMP/pcp-iwfd.log" env $(lab_upnp_env) "$daemon" -f -vv -c "$conf"
daemon_pid=$LAB_LAST_PID
lab_wait_for "grep -q 'upnp: IGD:$version on' '$LAB_TMP/pcp-iwfd.log'" 15 || {
	cat "$LAB_TMP/pcp-iwfd.log"
	echo "FAIL - the daemon did not start UPnP"
	exit 1
}
grep 'upnp: IGD' "$LAB_TMP/pcp-iwfd.log" | sed 's/^/  /'

lab_say "upnpc -s: discovery, status and the carrier's external address"
upnpc_run status -s
lab_check "upnpc -s exits 0" rc_is status 0
lab_check "SSDP found the IGD:$version root device" \
	has status "st: urn:schemas-upnp-org:device:InternetGatewayDevice:"
desc_url=$(sed -n 's/^ desc: //p' "$LAB_TMP/status.out" | head -1)
lab_exec lan timeout 5 python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())' "$desc_url" \
	>"$LAB_TMP/desc.xml" 2>&1
lab_check "the description ($desc_url) is InternetGatewayDevice:$version" \
	grep -q "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:$version</deviceType>" \
	"$LAB_TMP/desc.xml"
lab_check "Connected" has status "^Status : Connected"
lab_check "ExternalIPAddress = the carrier's $ext" has status "^ExternalIPAddress = $ext\$"

for proto in TCP UDP; do
	p=$(echo $proto | tr 'A-Z' 'a-z')
	port=$([ $proto = TCP ] && echo 7000 || echo 7001)
	lab_say "$proto: upnpc -a $lan $port $port $proto"
	upnpc_run add_$p -a "$lan" "$port" "$port" "$proto"
	lab_check "$proto: upnpc -a exits 0" rc_is add_$p 0
	extport=$(redirected_port add_$p)
	lab_check "$proto: redirected through the carrier's address" [ -n "$extport" ]
	entry=$(gw_entry $p $port)
	echo "  gateway list: $entry"
	lab_check "$proto: pcp-iwfctl lists it: carrier's address and port, origin upnp" \
		[ "$entry" = "$ext $extport upnp $lan" ]
	lab_check "$proto: the carrier holds the mapping" carrier_has_port "$extport"
	lab_check "$proto: traffic from the internet reaches the LAN host" \
		reach $p "$extport" "$port"
	eval "ext_$p=$extport"
done

lab_say "upnpc -l: GetGenericPortMappingEntry until 713"
upnpc_run list -l
# shellcheck disable=SC2154
lab_check "-l lists the TCP mapping" has list "TCP  *$ext_tcp->$lan:7000 "
lab_check "-l lists the UDP mapping" has list "UDP  *$ext_udp->$lan:7001 "
lab_check "-l ends with 713" has list "returned 713"

lab_say "subscriptions: a LAN callback gets its NOTIFYs, an internet one gets nothing (CallStranger)"
cat >"$LAB_TMP/gena_listener.py" <<-'PY'
import socket, sys
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(16)
while True:
    conn, peer = srv.accept()
    print("conn", peer[0], flush=True)
    conn.settimeout(3)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(body) < length:
            chunk = conn.recv(4096)
            if not chunk:
                break
            body += chunk
        print("req", head.split(b"\r\n")[0].decode(errors="replace"), flush=True)
        print("body", body.decode(errors="replace").replace("\n", " "), flush=True)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except Exception as e:
        print("error", e, flush=True)
    conn.close()
PY
cat >"$LAB_TMP/subscribe.py" <<-'PY'
# subscribe.py DESC_URL CALLBACK_URL: SUBSCRIBE to WANIPConnection's events, print the SID
import socket, sys, urllib.parse, urllib.request, xml.etree.ElementTree as ET
desc = urllib.request.urlopen(sys.argv[1], timeout=3).read()
ns = {"d": "urn:schemas-upnp-org:device-1-0"}
root = ET.fromstring(desc)
base = root.findtext("d:URLBase", default=sys.argv[1], namespaces=ns)
for svc in root.iter("{urn:schemas-upnp-org:device-1-0}service"):
    if ":service:WANIPConnection:" in svc.findtext("d:serviceType", namespaces=ns):
        path = svc.findtext("d:eventSubURL", namespaces=ns)
url = urllib.parse.urlparse(urllib.parse.urljoin(base, path))
s = socket.create_connection((url.hostname, url.port), timeout=5)
s.sendall(("SUBSCRIBE %s HTTP/1.1\r\nHOST: %s\r\nCALLBACK: <%s>\r\nNT: upnp:event\r\n"
           "TIMEOUT: Second-300\r\nContent-Length: 0\r\n\r\n"
           % (url.path, url.netloc, sys.argv[2])).encode())
reply = b""
while b"\r\n\r\n" not in reply:
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
status = reply.split(b"\r\n")[0].decode()
sid = [l.split(b":", 1)[1].strip().decode() for l in reply.split(b"\r\n")
       if l.lower().startswith(b"sid:")]
print(status, sid[0] if sid else "-")
PY
stranger_port=8100
lan_cb_port=8101
lab_bg inet "$LAB_TMP/gena_inet.log" python3 -u "$LAB_TMP/gena_listener.py" "$LAB_INET_IP" $stranger_port
lab_bg lan "$LAB_TMP/gena_lan.log" python3 -u "$LAB_TMP/gena_listener.py" "$lan" $lan_cb_port
lab_wait_for "lab_port_bound inet tcp $stranger_port" 5
lab_wait_for "lab_port_bound lan tcp $lan_cb_port" 5
# the path is open to an ordinary process of the gateway: a refusal is the guard's doing
lab_exec gw timeout 5 python3 -c 'import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()' \
	"$LAB_INET_IP" $stranger_port
lab_check "the gateway can reach the internet host's listener (control)" \
	lab_wait_for "[ \$(grep -c '^conn' '$LAB_TMP/gena_inet.log') = 1 ]" 3

lab_exec lan timeout 10 python3 "$LAB_TMP/subscribe.py" "$desc_url" \
	"http://$LAB_INET_IP:$stranger_port/evil" >"$LAB_TMP/sub_inet.out" 2>&1
echo "  SUBSCRIBE with an internet callback: $(cat "$LAB_TMP/sub_inet.out")"
lab_exec lan timeout 10 python3 "$LAB_TMP/subscribe.py" "$desc_url" \
	"http://$lan:$lan_cb_port/events" >"$LAB_TMP/sub_lan.out" 2>&1
echo "  SUBSCRIBE with a LAN callback: $(cat "$LAB_TMP/sub_lan.out")"
lab_check "the LAN subscription is accepted (200 OK, a SID)" grep -q '^HTTP/1.1 200 OK uuid:' "$LAB_TMP/sub_lan.out"
lab_check "the LAN callback gets the initial NOTIFY with ExternalIPAddress $ext" \
	lab_wait_for "grep -q 'ExternalIPAddress>$ext<' '$LAB_TMP/gena_lan.log'" 10
# U-11: a new mapping changes PortMappingNumberOfEntries (2 -> 3)
upnpc_run add_ev -a "$lan" 7002 7002 TCP
lab_check "a change is evented: PortMappingNumberOfEntries 3" \
	lab_wait_for "grep -q 'PortMappingNumberOfEntries>3<' '$LAB_TMP/gena_lan.log'" 10
lab_check "the daemon logged the refused NOTIFY to $LAB_INET_IP" \
	lab_wait_for "grep -q 'refused a TCP connection to $LAB_INET_IP' '$LAB_TMP/pcp-iwfd.log'" 10
sleep 2
echo "  internet listener: $(grep -c '^conn' "$LAB_TMP/gena_inet.log") connection(s);" \
	"LAN listener: $(grep -c '^req NOTIFY' "$LAB_TMP/gena_lan.log") NOTIFY(s)"
lab_check "no NOTIFY (no connection at all) reached the internet callback" \
	[ "$(grep -c '^conn' "$LAB_TMP/gena_inet.log")" = 1 ]
upnpc_run del_ev -d 7002 TCP

for proto in TCP UDP; do
	p=$(echo $proto | tr 'A-Z' 'a-z')
	port=$([ $proto = TCP ] && echo 7000 || echo 7001)
	extport=$(eval echo "\$ext_$p")
	lab_say "$proto: upnpc -d $extport $proto"
	upnpc_run del_$p -d "$extport" "$proto"
	lab_check "$proto: DeletePortMapping returned 0" has del_$p "UPNP_DeletePortMapping() returned : 0"
	lab_check "$proto: gone from pcp-iwfctl list" [ -z "$(gw_entry $p $port)" ]
	lab_wait_for "! carrier_has_port $extport" 5
	lab_check "$proto: gone at the carrier" eval "! carrier_has_port $extport"
	lab_check "$proto: traffic no longer arrives" \
		unreachable $p "$extport" "$port"
done

lab_say "upnpc -r: a mapping for the host itself"
upnpc_run redirect -r 7200 TCP
lab_check "upnpc -r exits 0" rc_is redirect 0
entry=$(gw_entry tcp 7200)
echo "  gateway list: $entry"
lab_check "-r: listed for $lan with origin upnp" [ "$(echo "$entry" | awk '{print $3, $4}')" = "upnp $lan" ]
rport=$(echo "$entry" | awk '{print $2}')
lab_check "-r: the carrier holds it" carrier_has_port "${rport:-0}"
upnpc_run redirect_del -d "${rport:-0}" TCP
lab_check "-r: deleted again" [ -z "$(gw_entry tcp 7200)" ]

if [ "$version" = 2 ]; then
	lab_say "IGD:2: AddAnyPortMapping, GetListOfPortMappings, DeletePortMappingRange"
	upnpc_run take -a "$lan" 7300 7300 TCP 600
	lab_check "port 7300 mapped first" [ "$(redirected_port take)" = 7300 ]
	upnpc_run any -n "$lan" 7301 7300 TCP 600
	lab_check "upnpc -n exits 0" rc_is any 0
	anyport=$(redirected_port any)
	echo "  AddAnyPortMapping for internal 7301, asking 7300: got ${anyport:-nothing}"
	lab_check "-n returned another port than the taken 7300" \
		[ -n "$anyport" ] && [ "$anyport" != 7300 ]
	lab_check "-n: pcp-iwfctl lists it with that port, origin upnp" \
		[ "$(gw_entry tcp 7301)" = "$ext $anyport upnp $lan" ]
	lab_check "-n: the carrier holds it" carrier_has_port "${anyport:-0}"
	lab_check "-n: traffic from the internet reaches the LAN host" \
		reach tcp "${anyport:-0}" 7301
	upnpc_run listing -L
	lab_check "-L lists 7300" has listing "TCP  *7300->$lan:7300 "
	lab_check "-L lists the AddAnyPortMapping one" has listing "TCP  *$anyport->$lan:7301 "
	upnpc_run range -N 1024 65535 TCP
	lab_check "DeletePortMappingRange returned 0" has range "UPNP_DeletePortMappingRange() returned : 0"
	lab_check "-N: both gone from pcp-iwfctl list" \
		[ -z "$(gw_entry tcp 7300)" ] && [ -z "$(gw_entry tcp 7301)" ]
	lab_wait_for "! carrier_has_port 7300 && ! carrier_has_port ${anyport:-0}" 5
	lab_check "-N: both gone at the carrier" \
		eval "! carrier_has_port 7300 && ! carrier_has_port ${anyport:-0}"
	upnpc_run listing2 -L
	lab_check "-L: nothing left (730)" has listing2 "returned 730"
else
	lab_say "IGD:1: no AddAnyPortMapping in WANIPConnection:1"
	upnpc_run any -n "$lan" 7301 7300 TCP 600
	lab_check "upnpc -n gets 401 Invalid Action" has any "failed with code 401"
	lab_check "and nothing was mapped" [ -z "$(gw_entry tcp 7301)" ]
fi

lab_check "the daemon is still running" lab_alive "$daemon_pid"
lab_kill "$daemon_pid"
lab_check "the daemon stopped cleanly (byebye, pupnp joined)" \
	eval "! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:|fatal' '$LAB_TMP/pcp-iwfd.log'"
lab_check "daemon left no control socket" [ ! -e "$LAB_TMP/ctl.sock" ]

if [ "$LAB_FAILS" -ne 0 ]; then
	echo "--- daemon log"; cat "$LAB_TMP/pcp-iwfd.log"
	echo "FAIL - $LAB_FAILS check(s) failed"
	exit 1
fi
echo "PASS - upnp_basic IGD:$version"
exit 0
