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
# its nft table and the carrier's rules empty. Then a PEER mapping (RFC 6887 §12) with real
# outbound UDP: the source the remote host sees, our postrouting SNAT winning over the lab's
# masquerade, the PEER in `list`, its peer_snat element, and its removal with
# `pcp-iwfctl delete` (see the PEER section below).
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

# reach PROTO ADDR PORT INTPORT: sent from the internet host (or, without an upstream,
# from the carrier, which is the gateway's "internet") to ADDR:PORT, a line arrives at
# the LAN host's INTPORT
from=inet
[ "$mode" = last ] && from=cgn
reach() { lab_reach "$from" "$1" "$2" "$3" lan "$4"; }
unreachable() { lab_unreachable "$from" "$1" "$2" "$3" lan "$4"; }

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
		reach $proto "$ext_addr" "$ext_port" "$port"
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
	# The gateway answers a delete at once and sends it upstream at the same
	# time (RFC 7648 §3, P-04). With nat = local its own rule is gone within
	# this loop turn; with nat = none only the carrier holds a rule, which
	# goes when the carrier has processed the delete: give it a moment.
	[ "$mode" = none ] && lab_wait_for "! lab_exec cgn nft list ruleset | grep -q 'dport $ext_port dnat'" 3
	lab_check "$proto traffic no longer arrives after the delete" \
		unreachable $proto "$ext_addr" "$ext_port" "$port"
done

# ---- PEER (RFC 6887 §12, RFC 7648 §3) ------------------------------------------------
# The LAN host asks for a PEER mapping of its UDP port 7100 toward REMOTE:7200, then sends
# one datagram from that port; a listener on the remote host reports the source it saw.
#   last   REMOTE is the carrier namespace (the gateway's "internet"): the source must be
#          the gateway's WAN address and the port the PEER answer named.
#   local  our postrouting chain (priority srcnat - 1) SNATs the flow to 198.51.100.2 and
#          the gateway port we chose; the carrier (miniupnpd 2.3.1) answers PEER with
#          SUCCESS, but the SNAT rule it installs has its addresses reversed
#          (docs/lab.md), so it is its masquerade that translates the flow to
#          203.0.113.1, keeping the source port when that port is free there. We assert
#          our part (the counter of our rule, the source port the carrier received) and
#          what the remote sees.
#   none   the gateway routes; the carrier's masquerade translates.
# In local and last another LAN address (192.0.2.11) first holds gateway port 7100 with a
# MAP, so our port differs from the internal one: were the lab's own masquerade (table
# ip lab_gw, priority srcnat) first, it would keep 7100, so the port the flow leaves with
# shows whose NAT ran.
peer_int=7100
peer_rport=7200
case $mode in
last) remote=$LAB_CGN_IP remote_ns=cgn ;;
*) remote=$LAB_INET_IP remote_ns=inet ;;
esac
gw_snats() { [ "$mode" = local ] || [ "$mode" = last ]; }
peer_snat_map() { lab_exec gw nft list map ip pcp_iwfd peer_snat 2>/dev/null; }
# the packet counter of our postrouting SNAT rule
peer_counter() {
	lab_exec gw nft list chain ip pcp_iwfd postrouting 2>/dev/null |
		sed -n 's/.*counter packets \([0-9]*\) .*/\1/p' | head -n 1
}
# the gateway's PEER entry: "ext_addr ext_port local_port remote_addr remote_port"
gw_peer_entry() {
	gwctl list --json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    if "remote_address" in m and m["internal_address"] == sys.argv[1] and \
            m["internal_port"] == int(sys.argv[2]) and m["protocol"] == "udp":
        print(m["external_address"], m["external_port"], m["local_port"],
              m["remote_address"], m["remote_port"])' "$LAB_LAN_HOST_IP" "$peer_int"
}
# packets the probe chain in the carrier namespace counted (see below)
probe_count() {
	lab_exec cgn nft list chain ip iwfd_probe seen 2>/dev/null |
		sed -n 's/.*counter packets \([0-9]*\) .*/\1/p' | head -n 1
}

hold_nonce=""
if gw_snats; then
	lab_say "PEER: a second LAN address takes gateway port $peer_int first"
	lab_exec lan ip addr add 192.0.2.11/24 dev "$LAB_LAN_IF"
	lanctl hold map -p udp -i $peer_int -l 600 -I 192.0.2.11
	lab_check "the MAP of 192.0.2.11 answered SUCCESS" rc_is hold 0
	hold_nonce=$(jget "$LAB_TMP/hold.json" nonce)
	hold_local=$(gwctl list --json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    if m["internal_address"] == "192.0.2.11":
        print(m["local_port"])')
	lab_check "192.0.2.11 holds gateway port $peer_int" [ "$hold_local" = "$peer_int" ]
fi

lab_say "PEER: the LAN host asks for udp $peer_int -> $remote:$peer_rport"
lanctl peer peer -p udp -i $peer_int -r "$remote:$peer_rport" -l 600
lab_check "peer answered SUCCESS" rc_is peer 0
peer_addr=$(jget "$LAB_TMP/peer.json" external_address)
peer_port=$(jget "$LAB_TMP/peer.json" external_port)
lab_check "peer external address is the outermost one ($want_addr)" [ "$peer_addr" = "$want_addr" ]
lab_check "peer answer names the remote peer" \
	[ "$(jget "$LAB_TMP/peer.json" remote_address) $(jget "$LAB_TMP/peer.json" remote_port)" = "$remote $peer_rport" ]
entry=$(gw_peer_entry)
echo "  gateway list: $entry"
gw_port=$(echo "$entry" | cut -d' ' -f3)
lab_check "pcp-iwfctl list --json shows the PEER: remote, answered address and port" \
	[ "$(echo "$entry" | cut -d' ' -f1,2,4,5)" = "$peer_addr $peer_port $remote $peer_rport" ]
gwctl list | sed 's/^/    /'
lab_check "pcp-iwfctl list names the remote peer" \
	eval "gwctl list | grep -q 'peer $remote:$peer_rport'"
if gw_snats; then
	lab_check "our gateway port ($gw_port) is not the held $peer_int" \
		[ "${gw_port:-$peer_int}" != "$peer_int" ]
	peer_snat_map | sed 's/^/    /'
	lab_check "the SNAT element is in the gateway's peer_snat map" \
		eval "peer_snat_map | grep -q '$LAB_LAN_HOST_IP \. udp \. $peer_int \. $remote \. $peer_rport .*: $LAB_GW_WAN_IP \. $gw_port'"
fi
if [ "$mode" = last ]; then
	lab_check "without an upstream the answer names the gateway port" [ "$peer_port" = "$gw_port" ]
fi

# a probe in the carrier namespace counts what arrives from the gateway, before any NAT
# there: from the gateway's WAN address and our port, or (nat = none) untranslated
probe_src="$LAB_GW_WAN_IP udp sport ${gw_port:-$peer_int}"
[ "$mode" = none ] && probe_src="$LAB_LAN_HOST_IP udp sport $peer_int"
lab_exec cgn nft -f - <<-EOF
	table ip iwfd_probe {
		chain seen {
			type filter hook prerouting priority raw; policy accept;
			iifname "$LAB_CGN_IN_IF" ip saddr $probe_src udp dport $peer_rport counter
		}
	}
EOF
counter0=$(peer_counter)
seen_out="$LAB_TMP/peer_seen"
cat >"$LAB_TMP/udp_seen.py" <<-'PYEOF'
	import socket, sys
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.bind((sys.argv[1], int(sys.argv[2])))
	s.settimeout(10)
	data, src = s.recvfrom(2048)
	print(src[0], src[1], flush=True)
PYEOF
lab_bg "$remote_ns" "$seen_out" python3 "$LAB_TMP/udp_seen.py" "$remote" "$peer_rport"
seen_pid=$LAB_LAST_PID
lab_wait_for "lab_port_bound $remote_ns udp $peer_rport" 5
printf 'peer-%s\n' "$RANDOM" | lab_exec lan timeout 5 nc -u -p $peer_int -w 1 "$remote" $peer_rport
lab_wait_for "[ -s '$seen_out' ]" 5
lab_kill "$seen_pid"
seen=$(head -n 1 "$seen_out")
echo "  the remote saw the datagram from: ${seen:-nothing}"
echo "  carrier probe: $(probe_count) packet(s) from $probe_src; our SNAT rule: ${counter0:-none} -> $(peer_counter)"
if command -v conntrack >/dev/null 2>&1; then
	lab_exec gw conntrack -L -p udp --dport $peer_rport 2>/dev/null | sed 's/^/    gw conntrack:  /'
	lab_exec cgn conntrack -L -p udp --dport $peer_rport 2>/dev/null | sed 's/^/    cgn conntrack: /'
fi
case $mode in
last)
	lab_check "our postrouting SNAT rule counted the flow" [ "$(peer_counter)" -gt "${counter0:-0}" ]
	lab_check "the remote sees the gateway's WAN address and the answered port" \
		[ "$seen" = "$LAB_GW_WAN_IP $peer_port" ]
	;;
local)
	# ours: the flow left the gateway from the port we chose, not the internal port
	# the lab's masquerade would have kept, so our chain ran first
	lab_check "our postrouting SNAT rule counted the flow" [ "$(peer_counter)" -gt "${counter0:-0}" ]
	lab_check "the carrier received the flow from $LAB_GW_WAN_IP:$gw_port" [ "$(probe_count)" -ge 1 ]
	# the carrier's: its PEER rule does not match (reversed addresses), its
	# masquerade translates to its external address and keeps the free port
	lab_check "the remote sees the carrier's external address" [ "${seen% *}" = "$LAB_CGN_EXT_IP" ]
	lab_check "the remote sees the port the PEER answer named" [ "${seen#* }" = "$peer_port" ]
	;;
none)
	lab_check "the gateway routed the flow untranslated" [ "$(probe_count)" -ge 1 ]
	lab_check "the gateway has no PEER SNAT of its own" [ -z "$(peer_counter)" ]
	lab_check "the remote sees the carrier's external address" [ "${seen% *}" = "$LAB_CGN_EXT_IP" ]
	lab_check "the remote sees the port the PEER answer named" [ "${seen#* }" = "$peer_port" ]
	;;
esac
lab_exec cgn nft delete table ip iwfd_probe

# PEER has no client delete (RFC 6887 §12.1): the operator removes it on the gateway
lab_say "PEER: pcp-iwfctl delete udp $peer_port on the gateway"
lab_check "control delete of the PEER succeeded" gwctl delete udp "$peer_port"
lab_check "the PEER is gone from the gateway's list" [ -z "$(gw_peer_entry)" ]
if gw_snats; then
	lab_check "the SNAT element is gone from peer_snat" \
		eval "! peer_snat_map | grep -q '$LAB_LAN_HOST_IP \. udp'"
	lanctl hold_delete map -p udp -i $peer_int -l 0 -N "$hold_nonce" -I 192.0.2.11
	lab_check "the MAP of 192.0.2.11 is deleted" rc_is hold_delete 0
fi

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

# RFC 6887 §8.2 (S-01): PCP arriving on the WAN interface is dropped without an answer and
# creates nothing. The carrier side sends a MAP, with its own address as the Client IP so
# only the interface check can refuse it, to the gateway's WAN address.
lab_say "a PCP MAP from the WAN side to $LAB_GW_WAN_IP:5351 gets no answer"
cat >"$LAB_TMP/pcp_probe.py" <<'PY'
# pcp_probe.py SERVER SOURCE: send a MAP (Client IP = SOURCE) three times, print the answers
import os, socket, struct, sys
gw, me = sys.argv[1], sys.argv[2]
mapped = b"\0" * 10 + b"\xff\xff" + socket.inet_aton(me)
req = struct.pack("!BBHI", 2, 1, 0, 600) + mapped          # header, lifetime 600
req += os.urandom(12) + struct.pack("!B3xHH", 6, 7400, 7400) + b"\0" * 10 + b"\xff\xff" + b"\0" * 4
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((me, 0))
s.settimeout(1.0)
answers = 0
for _ in range(3):
    s.sendto(req, (gw, 5351))
    try:
        s.recvfrom(2048)
        answers += 1
    except socket.timeout:
        pass
print(answers)
PY
wan_probe=$(lab_exec cgn timeout 10 python3 "$LAB_TMP/pcp_probe.py" "$LAB_GW_WAN_IP" "$LAB_CGN_IP")
lab_check "no answer to PCP from the WAN side (got ${wan_probe:-?})" [ "$wan_probe" = 0 ]
lab_check "... and no mapping was made" [ "$(gw_mappings)" = 0 ]
# the same request from the LAN host is answered: the silence above is the interface check
lan_probe=$(lab_exec lan timeout 10 python3 "$LAB_TMP/pcp_probe.py" "$LAB_GW_LAN_IP" "$LAB_LAN_HOST_IP")
lab_check "the same MAP from the LAN side is answered (got ${lan_probe:-?} of 3)" [ "$lan_probe" = 3 ]

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
