#!/bin/bash
# upnp_clients.sh BUILD_DIR [VERSION] - how deployed UPnP IGD control points talk to
# pcp-iwfd, and the abuse cases of issue 6, from LAN namespaces behind double NAT with
# the real carrier (miniupnpd):
#
#   lan (192.0.2.10) / lan2 (192.0.2.11) --UPnP--> pcp-iwfd on gw --PCP--> cgn --- inet
#
# VERSION is upnp_igd_version (1 or 2). Checks:
#   1. the python3-miniupnpc binding sequence (tests/netns/upnp_python.py);
#   2. raw SOAP written the way deployed clients write it, each shape taken from the
#      client's source (tests/netns/upnp_soap_client.py "shapes"; the file cites them);
#   3. two LAN hosts asking for the same external port: no stealing; 718 (and in v2
#      AddAnyPortMapping gives another port); the first host's port keeps working;
#   4. a mapping for another host's address is refused (718 v1 / 606 v2), nothing made;
#      after a SIGHUP with third_party = allow and third_party_host = the first host,
#      the first host maps for the second (traffic reaches the second), the second
#      deletes that mapping itself, and the second still may not map for the first;
#   5. oversized and broken HTTP/SOAP get an error and the IGD keeps serving;
#   6. CallStranger (CVE-2020-12695): SUBSCRIBE with a callback outside the LAN never
#      makes a connection there; a LAN callback gets the initial NOTIFY and one after
#      AddPortMapping changes PortMappingNumberOfEntries;
#   7. the IGD's TCP port and SSDP do not answer from the WAN side (reported as a NOTE
#      unless UPNP_CLIENTS_STRICT_WAN=1: that belongs to the hardening issue).
# Exit: 0 pass, 1 fail, 77 skip.

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"

build="${1:-}"
version="${2:-1}"
daemon="$build/pcp-iwfd"
ctl="$build/pcp-iwfctl"
# the distribution's python: python3-miniupnpc lives there, not in a pyenv
PY=/usr/bin/python3
client="$here/upnp_soap_client.py"
strict_wan="${UPNP_CLIENTS_STRICT_WAN:-1}"
if [ -z "$build" ] || [ ! -x "$daemon" ] || [ ! -x "$ctl" ]; then
	echo "SKIP: no pcp-iwfd / pcp-iwfctl in build directory '${build}'" >&2
	exit 77
fi
case "$version" in 1 | 2) ;; *) echo "usage: $0 BUILD_DIR 1|2" >&2; exit 2 ;; esac
lab_skip_unless_ready "$PY"
if ! "$PY" -c 'import miniupnpc' 2>/dev/null; then
	echo "SKIP: python3-miniupnpc not installed (scripts/install-deps installs it)" >&2
	exit 77
fi
lab_hard_timeout 290 "$0" "$@"

ext=$LAB_CGN_EXT_IP
lan1=$LAB_LAN_HOST_IP
lan2=$LAB_LAN2_HOST_IP

gwctl() { lab_exec gw "$ctl" -s "$LAB_TMP/ctl.sock" "$@"; }
# the gateway's mapping PROTO EXTPORT as "internal_address internal_port origin"
gw_entry() {
	gwctl list --json | "$PY" -c '
import json, sys
for m in json.load(sys.stdin):
    if m["protocol"] == sys.argv[1] and m["external_port"] == int(sys.argv[2]):
        print(m["internal_address"], m["internal_port"], m["origin"])' "$1" "$2"
}
gw_upnp_count() {
	gwctl list --json |
		"$PY" -c 'import json,sys; print(sum(m["origin"] == "upnp" for m in json.load(sys.stdin)))'
}
carrier_has_port() { lab_exec cgn nft list ruleset | grep 'dnat ip to' | grep -q "dport $1 "; }

# upcall NS NAME ACTION [Arg=value...]: one standard SOAP call from NS; JSON in NAME.json
upcall() {
	local ns=$1 name=$2
	shift 2
	lab_exec "$ns" timeout 30 "$PY" "$client" call "$loc" "$@" >"$LAB_TMP/$name.json" 2>&1
	printf '  [%s] %s %s\n' "$name" "$1" "$(cat "$LAB_TMP/$name.json")"
}
# jf NAME FIELD [OUTARG]: a field of the JSON answer (out.OUTARG for out arguments)
jf() {
	"$PY" -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit(0)
v = d.get("out", {}).get(sys.argv[3], "") if sys.argv[3] else d.get(sys.argv[2])
print("" if v is None else v)' "$LAB_TMP/$1.json" "$2" "${3:-}"
}
add_args() { # EXT IPORT CLIENT [PROTO] [LEASE]
	echo NewRemoteHost= "NewExternalPort=$1" "NewProtocol=${4:-TCP}" "NewInternalPort=$2" \
		"NewInternalClient=$3" NewEnabled=1 NewPortMappingDescription=upnp_clients \
		"NewLeaseDuration=${5:-0}"
}
spec_args() { echo NewRemoteHost= "NewExternalPort=$1" "NewProtocol=${2:-TCP}"; }
# run a python check group; its FAIL lines count as failures of this script
run_group() {
	local name=$1 fails
	shift
	"$@" >"$LAB_TMP/$name.out" 2>&1
	sed 's/^/  /' "$LAB_TMP/$name.out"
	fails=$(grep -c '^FAIL' "$LAB_TMP/$name.out")
	LAB_FAILS=$((LAB_FAILS + fails))
	if ! grep -q '^ok' "$LAB_TMP/$name.out"; then
		echo "FAIL - $name ran no check"
		LAB_FAILS=$((LAB_FAILS + 1))
	fi
}
reach() { lab_reach inet tcp "$ext" "$2" "$1" "$3"; } # NS EXTPORT INTPORT: inet -> carrier -> NS
daemon_alive() { lab_alive "$daemon_pid"; }

lab_up || exit 1
lab_add_lan_host || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }
# SSDP is multicast: the LAN hosts send it out of their LAN interface
lab_exec lan ip route add 239.0.0.0/8 dev "$LAB_LAN_IF"
lab_exec lan2 ip route add 239.0.0.0/8 dev "$LAB_LAN_IF"

conf="$LAB_TMP/pcp-iwfd.conf"
cat >"$conf" <<-EOF
lan_interface = $LAB_GW_LAN_IF
lan_interface = $LAB_GW_LAN2_IF
wan_interface = $LAB_GW_WAN_IF
upstream_server = $LAB_CGN_IP
upnp = yes
upnp_igd_version = $version
natpmp = yes
pcp = yes
state_file = $LAB_TMP/state
control_socket = $LAB_TMP/ctl.sock
EOF
lab_say "pcp-iwfd on the gateway, UPnP IGDv$version"
sed 's/^/    /' "$conf"
# shellcheck disable=SC2046 # lab_upnp_env: pupnp's own leak suppressed in an ASan build
lab_bg gw "$LAB_TMP/pcp-iwfd.log" env $(lab_upnp_env) "$daemon" -f -vv -c "$conf"
daemon_pid=$LAB_LAST_PID
lab_wait_for "[ -S '$LAB_TMP/ctl.sock' ]" 10 || {
	cat "$LAB_TMP/pcp-iwfd.log"
	echo "FAIL - daemon did not start"
	exit 1
}

lab_say "discovery: M-SEARCH from the LAN host"
discover() { # NS ST -> location in $LAB_TMP/disc.out
	lab_exec "$1" timeout 10 "$PY" "$client" discover "$2" >"$LAB_TMP/disc.out" 2>&1
}
igd1=urn:schemas-upnp-org:device:InternetGatewayDevice:1
igd2=urn:schemas-upnp-org:device:InternetGatewayDevice:2
if ! lab_wait_for "discover lan $igd1" 15; then
	echo "  $(cat "$LAB_TMP/disc.out")"
	tail -30 "$LAB_TMP/pcp-iwfd.log"
	echo "FAIL - the gateway does not answer an M-SEARCH for $igd1 on the LAN"
	exit 1
fi
loc=$(sed -n 's/^location=//p' "$LAB_TMP/disc.out")
igd_port=$(echo "$loc" | sed -n 's|^http://[^:/]*:\([0-9]*\)/.*|\1|p')
echo "  description: $loc"
lab_check "the IGD:1 search is answered with a description URL on $LAB_GW_LAN_IP" \
	eval "echo '$loc' | grep -q '^http://$LAB_GW_LAN_IP:[0-9]*/'"
if [ "$version" = 2 ]; then
	lab_check "IGDv2: the IGD:2 search is answered too" discover lan "$igd2"
else
	lab_exec lan "$PY" -c 'import sys, urllib.request
sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=5).read())' \
		"$loc" >"$LAB_TMP/desc.xml"
	lab_check "IGDv1: the description mentions no version 2 type" \
		eval "grep -q 'WANIPConnection:1' '$LAB_TMP/desc.xml' && ! grep -q ':2<' '$LAB_TMP/desc.xml'"
fi

lab_say "1. the python3-miniupnpc binding sequence"
run_group python lab_exec lan timeout 60 "$PY" "$here/upnp_python.py" "$ext" 42000 "$version"

lab_say "2. raw SOAP written the way deployed clients write it"
run_group shapes lab_exec lan timeout 150 "$PY" "$client" shapes "$loc" "$version" 40000 "$ext"
lab_check "the shapes left no UPnP mapping behind" [ "$(gw_upnp_count)" = 0 ]
# SOAP goes to the daemon's own server (the absolute controlURL); a client that builds
# the control URL from URLBase itself reaches pupnp's port: served too (docs/upnp.md)
lab_exec lan timeout 30 "$PY" "$client" call-pupnp "$loc" GetExternalIPAddress \
	>"$LAB_TMP/pupnp_port.json" 2>&1
printf '  [pupnp_port] GetExternalIPAddress %s\n' "$(cat "$LAB_TMP/pupnp_port.json")"
lab_check "SOAP sent to pupnp's own port is answered with the carrier's address" \
	[ "$(jf pupnp_port out NewExternalIPAddress)" = "$ext" ]
# ... through the daemon's XML gate: libixml never reads a body from the LAN
# (iwf/upnp_xml_gate.h, issue 8)
lab_exec lan timeout 60 "$PY" "$client" gate-pupnp "$loc" 43999 "$lan1" \
	>"$LAB_TMP/gate.json" 2>&1
printf '  [gate] %s\n' "$(cat "$LAB_TMP/gate.json")"
# deep and overlong are bodies libixml accepts (without the gate: a SOAP fault, 500)
for shape in deep overlong doctype; do
	lab_check "pupnp's port: a body our reader refuses ($shape) -> 400, unread by libixml" \
		[ "$(jf gate "$shape")" = 400 ]
done
lab_check "pupnp's port: AddPortMapping runs with the arguments our reader read" \
	eval "[ '$(jf gate add)' = 200 ] && [ '$(jf gate desc)' = 'gate & <ok>' ] && [ '$(jf gate delete)' = 200 ]"
lab_check "the log does not say the XML gate is missing" \
	eval "! grep -q 'XML gate is not in this executable' '$LAB_TMP/pcp-iwfd.log'"

lab_say "3. two LAN hosts ask for the same external port"
upcall lan c1 AddPortMapping $(add_args 43000 43000 "$lan1")
lab_check "first host: AddPortMapping 43000 -> 200" [ "$(jf c1 status)" = 200 ]
upcall lan2 c2 AddPortMapping $(add_args 43000 43000 "$lan2")
lab_check "second host: AddPortMapping 43000 -> 718 ConflictInMappingEntry" \
	[ "$(jf c2 code)" = 718 ]
if [ "$version" = 2 ]; then
	upcall lan2 c3 AddAnyPortMapping $(add_args 43000 43000 "$lan2")
	p2=$(jf c3 out NewReservedPort)
	lab_check "second host: AddAnyPortMapping 43000 -> 200 with another port ($p2)" \
		eval "[ '$(jf c3 status)' = 200 ] && [ -n '$p2' ] && [ '$p2' != 43000 ] && [ '$p2' != 0 ]"
	[ -n "$p2" ] && lab_check "the second host's reserved port $p2 reaches the second host" \
		reach lan2 "$p2" 43000
fi
upcall lan c4 GetSpecificPortMappingEntry $(spec_args 43000)
lab_check "port 43000 still belongs to the first host" \
	[ "$(jf c4 out NewInternalClient)" = "$lan1" ]
lab_check "the gateway lists 43000 for the first host, origin upnp" \
	[ "$(gw_entry tcp 43000)" = "$lan1 43000 upnp" ]
lab_check "the carrier has port 43000" carrier_has_port 43000
lab_check "traffic from the internet to port 43000 reaches the first host" \
	reach lan 43000 43000
upcall lan c5 DeletePortMapping $(spec_args 43000)
lab_check "first host: DeletePortMapping 43000 -> 200" [ "$(jf c5 status)" = 200 ]
if [ "$version" = 2 ] && [ -n "$p2" ]; then
	upcall lan2 c6 DeletePortMapping $(spec_args "$p2")
	lab_check "second host: DeletePortMapping $p2 -> 200" [ "$(jf c6 status)" = 200 ]
fi

lab_say "4. a host asks a mapping for another host's address"
want=$([ "$version" = 2 ] && echo 606 || echo 718)
upcall lan t1 AddPortMapping $(add_args 43100 43100 "$lan2")
lab_check "AddPortMapping for $lan2 from $lan1 -> $want" [ "$(jf t1 code)" = "$want" ]
if [ "$version" = 2 ]; then
	upcall lan t2 AddAnyPortMapping $(add_args 43101 43101 "$lan2")
	lab_check "AddAnyPortMapping for $lan2 from $lan1 -> 606" [ "$(jf t2 code)" = 606 ]
fi
upcall lan t3 GetSpecificPortMappingEntry $(spec_args 43100)
lab_check "nothing was made: GetSpecificPortMappingEntry 43100 -> 714" \
	[ "$(jf t3 code)" = 714 ]
lab_check "nothing was made: the gateway has no mapping 43100" [ -z "$(gw_entry tcp 43100)" ]
lab_check "nothing was made: the carrier has no port 43100" eval "! carrier_has_port 43100"

lab_say "4b. third_party_host = $lan1 (SIGHUP): the first host maps for the second"
printf 'third_party = allow\nthird_party_host = %s\n' "$lan1" >>"$conf"
kill -HUP "$daemon_pid"
lab_check "the reload is logged" \
	lab_wait_for "grep -q 'configuration reloaded from' '$LAB_TMP/pcp-iwfd.log'" 10
upcall lan t4 AddPortMapping $(add_args 43110 43110 "$lan2")
lab_check "listed $lan1: AddPortMapping for $lan2 -> 200" [ "$(jf t4 status)" = 200 ]
lab_check "the gateway lists 43110 for $lan2, origin upnp" \
	[ "$(gw_entry tcp 43110)" = "$lan2 43110 upnp" ]
lab_check "traffic from the internet to port 43110 reaches $lan2" \
	reach lan2 43110 43110
upcall lan2 t5 AddPortMapping $(add_args 43111 43111 "$lan1")
lab_check "unlisted $lan2: AddPortMapping for $lan1 -> $want" [ "$(jf t5 code)" = "$want" ]
upcall lan2 t6 DeletePortMapping $(spec_args 43110)
lab_check "$lan2 deletes the mapping made for it -> 200" [ "$(jf t6 status)" = 200 ]
lab_check "the gateway has no mapping 43110 or 43111" \
	eval "[ -z \"\$(gw_entry tcp 43110)\" ] && [ -z \"\$(gw_entry tcp 43111)\" ]"

lab_say "5. oversized and broken HTTP/SOAP"
run_group abuse lab_exec lan timeout 200 "$PY" "$client" abuse "$loc" "$ext"
lab_check "the daemon is still running" daemon_alive

lab_say "6. CallStranger (CVE-2020-12695): GENA callbacks outside the LAN"
lab_bg inet "$LAB_TMP/inet_listen.log" "$PY" "$client" listen "$LAB_INET_IP" 8089 \
	"$LAB_TMP/inet_cb.rec"
lab_bg cgn "$LAB_TMP/cgn_listen.log" "$PY" "$client" listen "$LAB_CGN_IP" 8091 \
	"$LAB_TMP/cgn_cb.rec"
lab_bg lan "$LAB_TMP/lan_listen.log" "$PY" "$client" listen "$lan1" 8090 "$LAB_TMP/lan_cb.rec"
lab_wait_for "lab_port_bound inet tcp 8089 && lab_port_bound cgn tcp 8091 &&
	lab_port_bound lan tcp 8090" 5 || echo "  (a callback listener did not start)"
: >"$LAB_TMP/inet_cb.rec"
: >"$LAB_TMP/cgn_cb.rec"
: >"$LAB_TMP/lan_cb.rec"
subscribe() { # NS NAME CALLBACK
	lab_exec "$1" timeout 20 "$PY" "$client" subscribe "$loc" "$3" >"$LAB_TMP/$2.json" 2>&1
	printf '  [%s] SUBSCRIBE CALLBACK <%s>: %s\n' "$2" "$3" "$(cat "$LAB_TMP/$2.json")"
}
subscribe lan s_inet "http://$LAB_INET_IP:8089/"
subscribe lan s_cgn "http://$LAB_CGN_IP:8091/"
subscribe lan s_lan "http://$lan1:8090/"
lab_check "a LAN callback is accepted: 200 with a SID" \
	eval "[ '$(jf s_lan status)' = 200 ] && [ -n '$(jf s_lan sid)' ]"
lab_check "the LAN callback gets the initial NOTIFY (SEQ 0)" \
	lab_wait_for "grep -q '^REQUEST NOTIFY .* seq=0' '$LAB_TMP/lan_cb.rec'" 5
n0=$(sed -n 's/^VAR PortMappingNumberOfEntries=//p' "$LAB_TMP/lan_cb.rec" | tail -1)
echo "  initial PortMappingNumberOfEntries=$n0"
upcall lan e1 AddPortMapping $(add_args 43200 43200 "$lan1")
lab_check "AddPortMapping 43200 -> 200" [ "$(jf e1 status)" = 200 ]
lab_check "the LAN callback gets a NOTIFY with PortMappingNumberOfEntries=$((${n0:-0} + 1))" \
	lab_wait_for "grep -q '^VAR PortMappingNumberOfEntries=$((${n0:-0} + 1))$' '$LAB_TMP/lan_cb.rec'" 5
# give any NOTIFY toward the outside time to arrive: 10 s after the subscriptions
sleep 6
sed 's/^/  lan callback: /' "$LAB_TMP/lan_cb.rec" | head -20
lab_check "no connection ever reached the internet host's callback $LAB_INET_IP:8089" \
	[ ! -s "$LAB_TMP/inet_cb.rec" ]
lab_check "no connection ever reached the carrier-side callback $LAB_CGN_IP:8091" \
	[ ! -s "$LAB_TMP/cgn_cb.rec" ]
[ -s "$LAB_TMP/inet_cb.rec" ] && sed 's/^/  inet callback: /' "$LAB_TMP/inet_cb.rec"
upcall lan e2 DeletePortMapping $(spec_args 43200)
lab_check "DeletePortMapping 43200 -> 200" [ "$(jf e2 status)" = 200 ]

lab_say "7. the IGD seen from the WAN side (the carrier's namespace)"
for target in "$LAB_GW_WAN_IP" "$LAB_GW_LAN_IP"; do
	lab_exec cgn timeout 15 "$PY" "$client" probe-wan "$target" "$igd_port" \
		>"$LAB_TMP/wan.json" 2>&1
	echo "  from cgn to $target:$igd_port and udp/1900: $(cat "$LAB_TMP/wan.json")"
	answered=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]));
print("yes" if d["http_status"] is not None or d["ssdp_answer"] else "no")' "$LAB_TMP/wan.json")
	if [ "$strict_wan" = 1 ]; then
		lab_check "no HTTP or SSDP answer from the WAN side to $target" [ "$answered" = no ]
	elif [ "$answered" = yes ]; then
		echo "NOTE - the IGD answers from the WAN side to $target (hardening issue;" \
			"UPNP_CLIENTS_STRICT_WAN=1 makes this a failure)"
	else
		echo "ok - no HTTP or SSDP answer from the WAN side to $target"
	fi
done

lab_say "the end: nothing left behind, no sanitizer report"
lab_check "no UPnP mapping left on the gateway" [ "$(gw_upnp_count)" = 0 ]
lab_check "the daemon is still running" daemon_alive
lab_kill "$daemon_pid"
lab_check "no sanitizer report in the daemon log" \
	eval "! grep -q 'AddressSanitizer\|LeakSanitizer\|runtime error:' '$LAB_TMP/pcp-iwfd.log'"

if [ "$LAB_FAILS" -ne 0 ]; then
	echo "--- daemon log (last 80 lines)"
	tail -80 "$LAB_TMP/pcp-iwfd.log"
	echo "FAIL - $LAB_FAILS check(s) failed"
	exit 1
fi
echo "PASS - upnp_clients v$version"
exit 0
