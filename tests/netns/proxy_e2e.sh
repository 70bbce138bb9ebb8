#!/bin/bash
# proxy_e2e.sh BUILD_DIR [MODE] - the whole PCP path with real kernels and a real carrier:
# LAN host --PCP--> pcp-iwfd on the gateway --PCP MAP--> miniupnpd on the carrier, then real
# TCP and UDP from the internet host through both NATs to a listener on the LAN host.
#
#   MODE local    nat = local + upstream (the double-NAT home; default)
#   MODE none     nat = none + upstream (routed LAN: MAP upstream with THIRD_PARTY)
#   MODE last     no upstream_server: the gateway is the last NAT
#
# Each mode: pcp-iwfctl map from the LAN host for TCP and UDP; the answer's external
# address is the outermost one (the carrier's, or the gateway's WAN address without an
# upstream); traffic arrives; `pcp-iwfctl list --json` on the gateway shows the mapping with
# that address and port; a refresh inside the cache window is answered by the gateway alone;
# a delete (lifetime 0 with the nonce) stops the traffic and leaves the gateway's table,
# its nft table and the carrier's rules empty.
# Exit: 0 pass, 1 fail, 77 skip.

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"

build="${1:-}"
mode="${2:-local}"
daemon="$build/pcp-iwfd"
ctl="$build/pcp-iwfctl"
if [ -z "$build" ] || [ ! -x "$daemon" ] || [ ! -x "$ctl" ]; then
	echo "SKIP: no pcp-iwfd / pcp-iwfctl in build directory '${build}'" >&2
	exit 77
fi
case $mode in local | none | last) ;; *) echo "usage: $0 BUILD_DIR [local|none|last]" >&2; exit 2 ;; esac
lab_skip_unless_ready
lab_hard_timeout 240 "$0" "$@"

jget() {
	python3 -c 'import json, sys
obj = json.load(open(sys.argv[1]))
v = obj.get(sys.argv[2])
print("" if v is None else v)' "$1" "$2" 2>/dev/null
}

# lanctl NAME ARGS...: pcp-iwfctl from the LAN host toward the gateway, JSON to NAME.json
lanctl() {
	local name="$1" rc
	shift
	lab_exec lan timeout 30 "$ctl" "$@" -S "$LAB_GW_LAN_IP" -w 8 --json \
		>"$LAB_TMP/$name.json" 2>"$LAB_TMP/$name.err"
	rc=$?
	echo "$rc" >"$LAB_TMP/$name.rc"
	printf '  [%s: exit %s] %s\n' "$name" "$rc" "$(tr -d '\n' <"$LAB_TMP/$name.json")"
	[ -s "$LAB_TMP/$name.err" ] && sed 's/^/  stderr: /' "$LAB_TMP/$name.err"
	return 0
}
rc_is() { [ "$(cat "$LAB_TMP/$1.rc")" = "$2" ]; }
gwctl() { lab_exec gw "$ctl" -s "$LAB_TMP/ctl.sock" "$@"; }
gw_mappings() { gwctl list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# the mapping for PROTO INTPORT as "address port" from the gateway's list
gw_entry() {
	gwctl list --json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    if m["protocol"] == sys.argv[1] and m["internal_port"] == int(sys.argv[2]):
        print(m["external_address"], m["external_port"], m["origin"], m["internal_address"])' "$1" "$2"
}
# elements of the gateway's DNAT map (nft -j: one "elem" entry per element)
nft_elements() {
	lab_exec gw nft -j list map ip pcp_iwfd dnat_ports 2>/dev/null | python3 -c '
import json, sys
for o in json.load(sys.stdin)["nftables"]:
    if "map" in o:
        print(len(o["map"].get("elem", [])))'
}
carrier_rules() { lab_exec cgn nft list ruleset | grep -c 'dnat ip to'; }

# reach PROTO ADDR PORT TEXT: send from the internet host (or, without an upstream, from
# the carrier, which is the gateway's "internet"), true when TEXT arrives on the LAN host
reach() {
	local proto=$1 addr=$2 port=$3 text=$4 from=inet out="$LAB_TMP/recv.$RANDOM"
	[ "$mode" = last ] && from=cgn
	lab_listen lan "$proto" "$port" "$out" || return 1
	lab_send "$from" "$proto" "$addr" "$port" "$text"
	lab_wait_for "grep -q '$text' '$out'" 3
}
unreachable() { ! reach "$@"; }

# nat = none: the home router routes the LAN instead of masquerading it
[ "$mode" = none ] && export LAB_GW_NAT=none
lab_up || exit 1
if [ "$mode" != last ]; then
	lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }
fi

conf="$LAB_TMP/pcp-iwfd.conf"
{
	echo "lan_interface = $LAB_GW_LAN_IF"
	echo "wan_interface = $LAB_GW_WAN_IF"
	[ "$mode" != last ] && echo "upstream_server = $LAB_CGN_IP"
	[ "$mode" = none ] && echo "nat = none"
	echo "upnp = no"
	echo "natpmp = no"
	echo "state_file = $LAB_TMP/state"
	echo "control_socket = $LAB_TMP/ctl.sock"
} >"$conf"
lab_say "pcp-iwfd on the gateway, mode $mode"
sed 's/^/    /' "$conf"
lab_bg gw "$LAB_TMP/pcp-iwfd.log" "$daemon" -f -v -c "$conf"
daemon_pid=$LAB_LAST_PID
lab_wait_for "[ -S '$LAB_TMP/ctl.sock' ]" 10 || { cat "$LAB_TMP/pcp-iwfd.log"; echo "FAIL - daemon did not start"; exit 1; }

case $mode in
local | none) want_addr=$LAB_CGN_EXT_IP ;;
last) want_addr=$LAB_GW_WAN_IP ;;
esac

for proto in tcp udp; do
	port=$([ $proto = tcp ] && echo 7000 || echo 7001)
	lab_say "$proto: the LAN host asks the gateway for port $port"
	lanctl map_$proto map -p $proto -i $port -l 600
	lab_check "$proto map answered SUCCESS" rc_is map_$proto 0
	ext_addr=$(jget "$LAB_TMP/map_$proto.json" external_address)
	ext_port=$(jget "$LAB_TMP/map_$proto.json" external_port)
	nonce=$(jget "$LAB_TMP/map_$proto.json" nonce)
	lab_check "$proto external address is the outermost one ($want_addr)" [ "$ext_addr" = "$want_addr" ]
	lab_check "$proto lifetime granted" [ "$(jget "$LAB_TMP/map_$proto.json" lifetime)" -gt 0 ]
	lab_check "$proto traffic from the internet reaches the LAN host" \
		reach $proto "$ext_addr" "$ext_port" "hello-$proto-$RANDOM"
	entry=$(gw_entry $proto $port)
	echo "  gateway list: $entry"
	lab_check "$proto: pcp-iwfctl list shows the outermost address and port" \
		[ "$entry" = "$ext_addr $ext_port pcp $LAB_LAN_HOST_IP" ]

	# a refresh with most of the lifetime left is answered from the cache (RFC 7648 §3)
	lanctl refresh_$proto map -p $proto -i $port -l 600 -N "$nonce"
	lab_check "$proto refresh SUCCESS with the same port" \
		[ "$(jget "$LAB_TMP/refresh_$proto.json" external_port)" = "$ext_port" ]

	# another nonce for the same internal port is another owner (RFC 6887 §11.3)
	lanctl thief_$proto map -p $proto -i $port -l 600
	lab_check "$proto: a different nonce gets NOT_AUTHORIZED" \
		[ "$(jget "$LAB_TMP/thief_$proto.json" result)" = NOT_AUTHORIZED ]

	lanctl delete_$proto map -p $proto -i $port -l 0 -N "$nonce"
	lab_check "$proto delete answered SUCCESS" rc_is delete_$proto 0
	lab_check "$proto traffic no longer arrives after the delete" \
		unreachable $proto "$ext_addr" "$ext_port" "late-$proto-$RANDOM"
done

lab_wait_for '[ "$(gw_mappings)" = 0 ]' 5
lab_check "the gateway's table is empty" [ "$(gw_mappings)" = 0 ]
if [ "$mode" = local ] || [ "$mode" = last ]; then
	lab_check "the gateway's nft map is empty" [ "$(nft_elements)" = 0 ]
fi
if [ "$mode" != last ]; then
	lab_wait_for '[ "$(carrier_rules)" = 0 ]' 5
	lab_check "the carrier's rules are gone" [ "$(carrier_rules)" = 0 ]
	json=$(gwctl status --json)
	lab_check "status shows the upstream server up" \
		python3 -c 'import json,sys; s=json.loads(sys.argv[1]); assert s["upstream"][0]["state"]=="up", s; assert s["external_address"]==sys.argv[2], s' "$json" "$want_addr"
fi

# SIGTERM: clean exit
lab_kill "$daemon_pid"
lab_check "daemon left no control socket" [ ! -e "$LAB_TMP/ctl.sock" ]

if [ "$LAB_FAILS" -ne 0 ]; then
	echo "--- daemon log"; cat "$LAB_TMP/pcp-iwfd.log"
	echo "FAIL - $LAB_FAILS check(s) failed (mode $mode)"
	exit 1
fi
echo "PASS - proxy_e2e ($mode)"
exit 0
