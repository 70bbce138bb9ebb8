#!/bin/bash
# abuse.sh BUILD_DIR [IGD_VERSION] - a compromised LAN host against the real daemon (upnp,
# natpmp, pcp) and the real carrier (miniupnpd) in the lab of scripts/lab.sh (issue 8
# "Tests"; spec/iwf.md X-02, X-07; RFC 6887 §17.2, §18.3.1, §18.3.2):
#
#   lan (192.0.2.10, the attacker) / lan2 (192.0.2.11) --- pcp-iwfd on gw --- cgn --- inet
#
# Checks:
#   1. spoofing: lan adds 172.31.99.5, outside every LAN prefix, to its interface and uses
#      it as the source of a PCP MAP, a NAT-PMP map request and a SOAP AddPortMapping. The
#      gateway routes that address back to lan (the worst case: the spoofer sees every
#      answer). RFC 6887 §18.3.2: mappings are made for the source address, so a source
#      outside the LAN must not make one, and spec/iwf.md X-02 drops it: PCP and NAT-PMP
#      get no answer at all (nothing leaves port 5351 toward that address), SOAP no
#      answer, an HTTP refusal or the fault NOT_AUTHORIZED (718 on IGD:1 / 606 on IGD:2:
#      src/map_err.c), never a success, and nothing is made (pcp-iwfctl list, the
#      daemon's nft table, the carrier);
#   1b. lan2, on the gateway's other LAN interface, forges lan's address (inside the LAN
#      prefixes): its PCP MAP and NAT-PMP request are dropped by the guard's reverse-path
#      check (fib saddr . iif) and nothing is made;
#   2. quota (max_mappings_per_host = 3): lan makes 3 mappings, one per protocol; its
#      4th in each protocol gets the quota error (PCP USER_EX_QUOTA 10, NAT-PMP 4, UPnP
#      501 on IGD:1 / 728 on IGD:2: src/map_err.c MAP_ERR_QUOTA) while lan2 still maps
#      in all three;
#   3. flood: lan sends 10,000 malformed datagrams to 192.0.2.1:5351 and 200 broken HTTP
#      requests to the IGD's SOAP port and pupnp's port (garbage, oversized headers, bad
#      Content-Length, half requests it keeps open); then lan2's PCP MAP, NAT-PMP request
#      and SOAP GetExternalIPAddress are each answered within 1 s, lan (its half-open
#      requests closed) is served again within 1 s, the daemon runs and its table holds
#      exactly what it held before.
# Exit: 0 pass, 1 fail, 77 skip.

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"

build="${1:-}"
version="${2:-1}"
daemon="$build/pcp-iwfd"
ctl="$build/pcp-iwfctl"
PY=/usr/bin/python3
client="$here/abuse_client.py"
table=pcp_iwfd
spoof=172.31.99.5
quota=3
# the flood's figures (issue 8)
flood_datagrams=10000
flood_http=200
# what "served at once" means here (issue 8): 1 s
budget=1.0
if [ -z "$build" ] || [ ! -x "$daemon" ] || [ ! -x "$ctl" ]; then
	echo "SKIP: no pcp-iwfd / pcp-iwfctl in build directory '${build}'" >&2
	exit 77
fi
case "$version" in 1 | 2) ;; *) echo "usage: $0 BUILD_DIR [1|2]" >&2; exit 2 ;; esac
lab_skip_unless_ready "$PY"
lab_hard_timeout 150 "$0" "$@"
LAB_PREFIX="${LAB_PREFIX:-iwfab$$}"

gw_lan=$LAB_GW_LAN_IP
lan1=$LAB_LAN_HOST_IP
lan2=$LAB_LAN2_HOST_IP
ext=$LAB_CGN_EXT_IP
# src/map_err.c: MAP_ERR_NOT_AUTHORIZED and MAP_ERR_QUOTA in UPnP, per IGD version
if [ "$version" = 1 ]; then
	upnp_not_authorized=718
	upnp_quota=501
else
	upnp_not_authorized=606
	upnp_quota=728
fi
stype="urn:schemas-upnp-org:service:WANIPConnection:$version"

gwctl() { lab_exec gw "$ctl" -s "$LAB_TMP/ctl.sock" "$@"; }
# the table, one "proto internal:port external:port origin state" a line, sorted
gw_table() {
	gwctl list --json | "$PY" -c '
import json, sys
for m in sorted(json.load(sys.stdin), key=lambda m: (m["protocol"], m["internal_address"], m["internal_port"])):
    print(m["protocol"], "%s:%d" % (m["internal_address"], m["internal_port"]),
          "%s:%d" % (m["external_address"], m["external_port"]), m["origin"], m["state"])'
}
gw_has() { gw_table | grep -q "$1"; }
carrier_has() { lab_exec cgn nft list ruleset | grep 'dnat ip to' | grep -q "$1"; }
daemon_alive() { lab_alive "$daemon_pid"; }
# jf NAME FIELD [KEY]: a field of $LAB_TMP/NAME.json (KEY: of the "out" object)
jf() {
	"$PY" -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit(0)
v = d.get("out", {}).get(sys.argv[3]) if sys.argv[3] else d.get(sys.argv[2])
print("" if v is None else v)' "$LAB_TMP/$1.json" "$2" "${3:-}"
}
# req NAME NS SUBCOMMAND ARGS...: one request through abuse_client.py; JSON in NAME.json
req() {
	local name=$1 ns=$2
	shift 2
	lab_exec "$ns" timeout 20 "$PY" "$client" "$@" >"$LAB_TMP/$name.json" 2>&1
	printf '  [%s] %s\n' "$name" "$(cat "$LAB_TMP/$name.json")"
}
pcp() { req "$1" "$2" pcp-map "$3" "$gw_lan" "$4" "$5" "${6:-600}" "${7:-5}"; }
natpmp() { req "$1" "$2" natpmp-map "$3" "$gw_lan" "$4" "$5" "${6:-600}" "${7:-5}"; }
# soapcall NAME NS SRC WAIT ACTION [Arg=value...]
soapcall() {
	local name=$1 ns=$2 src=$3 wait=$4 action=$5
	shift 5
	req "$name" "$ns" soap "$src" "$control_url" "$stype" "$action" "$wait" "$@"
}
add_args() { # EXTPORT PROTO INTPORT CLIENT
	echo NewRemoteHost= "NewExternalPort=$1" "NewProtocol=$2" "NewInternalPort=$3" \
		"NewInternalClient=$4" NewEnabled=1 NewPortMappingDescription=abuse \
		NewLeaseDuration=3600
}
# within NAME: answered in at most $budget s
within() { "$PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= 1000 * float(sys.argv[2]) else 1)' \
	"$(jf "$1" ms)" "$budget"; }
not() { ! "$@"; }

lab_up || exit 1
lab_add_lan_host || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }

conf="$LAB_TMP/pcp-iwfd.conf"
cat >"$conf" <<EOF
lan_interface = $LAB_GW_LAN_IF
lan_interface = $LAB_GW_LAN2_IF
wan_interface = $LAB_GW_WAN_IF
upstream_server = $LAB_CGN_IP
nft_table = $table
upnp = yes
upnp_igd_version = $version
natpmp = yes
pcp = yes
max_mappings_per_host = $quota
state_file = $LAB_TMP/state
control_socket = $LAB_TMP/ctl.sock
EOF
# The per-host request rate limit (issue 8), where the daemon has it: pinned to the
# documented defaults so that the figures below do not move with them. The flood spends
# lan's bucket; at 50/s it holds a token again 20 ms after the flood.
printf 'rate_limit = 50\nrate_burst = 200\n' >"$LAB_TMP/rate.conf"
cat "$conf" "$LAB_TMP/rate.conf" >"$LAB_TMP/probe.conf"
if "$daemon" -t -c "$LAB_TMP/probe.conf" >/dev/null 2>&1; then
	cat "$LAB_TMP/rate.conf" >>"$conf"
else
	echo "  (this daemon has no rate_limit / rate_burst keys: run without them)"
fi
lab_say "pcp-iwfd on the gateway: UPnP IGD:$version, NAT-PMP, PCP; at most $quota mappings a host"
sed 's/^/    /' "$conf"
# shellcheck disable=SC2046  # lab_upnp_env's words are separate assignments
lab_bg gw "$LAB_TMP/pcp-iwfd.log" env $(lab_upnp_env) "$daemon" -f -vv -c "$conf"
daemon_pid=$LAB_LAST_PID
if ! lab_wait_for "grep -q 'upnp: IGD:.*control http' '$LAB_TMP/pcp-iwfd.log'" 15; then
	tail -30 "$LAB_TMP/pcp-iwfd.log"
	echo "FAIL - the daemon did not start its IGD"
	exit 1
fi
igdline=$(grep -m1 'upnp: IGD:.*control http' "$LAB_TMP/pcp-iwfd.log")
desc_port=$(echo "$igdline" | sed -n 's|.*description http://[0-9.]*:\([0-9]*\)/.*|\1|p')
control_port=$(echo "$igdline" | sed -n 's|.*control http://[0-9.]*:\([0-9]*\).*|\1|p')
control_url="http://$gw_lan:$control_port/ctl/IPConn"
echo "  $igdline"
[ -n "$desc_port" ] && [ -n "$control_port" ] || { echo "FAIL - no IGD ports in the log"; exit 1; }
# the address probe must know the carrier's address before the timed requests
lab_wait_for "gwctl status --json | grep -q '\"external_address\":\"$ext\"'" 10

# ---------------------------------------------------------------------------------------
lab_say "1. lan spoofs $spoof (outside every LAN prefix)"
lab_exec lan ip addr add "$spoof/32" dev "$LAB_LAN_IF"
# the worst case: whatever the gateway says to $spoof reaches lan
lab_exec gw ip route add "$spoof/32" dev "$LAB_GW_LAN_IF"
# count every datagram the gateway sends to the spoofed address, whichever way it goes
lab_exec gw nft -f - <<EOF
table ip abuse_probe {
	chain out {
		type filter hook output priority 0; policy accept;
		ip daddr $spoof udp sport 5351 counter
	}
}
EOF
spoof_answers() {
	lab_exec gw nft list chain ip abuse_probe out |
		sed -n 's/.*udp sport 5351 counter packets \([0-9]*\).*/\1/p'
}
pcp spoof_pcp lan "$spoof" tcp 41000 600 3
natpmp spoof_natpmp lan "$spoof" udp 41001 600 3
# shellcheck disable=SC2046  # add_args's words are separate arguments
soapcall spoof_soap lan "$spoof" 5 AddPortMapping $(add_args 41002 TCP 41002 "$spoof")
echo "  datagrams from the gateway's port 5351 to $spoof: $(spoof_answers)"
# X-02 (RFC 6887 §18.3.2 ingress filtering): dropped, not even an error
lab_check "PCP MAP from $spoof: no answer at all" \
	[ "$(jf spoof_pcp answered)" = False ]
lab_check "NAT-PMP map from $spoof: no answer at all" \
	[ "$(jf spoof_natpmp answered)" = False ]
# no answer, an HTTP refusal (4xx, 5xx but a SOAP fault), or the fault NOT_AUTHORIZED
spoof_soap_refused() {
	local st
	[ "$(jf spoof_soap answered)" = False ] && return 0
	st=$(jf spoof_soap status)
	[ "$st" -ge 400 ] || return 1
	[ "$st" != 500 ] || [ "$(jf spoof_soap error_code)" = "$upnp_not_authorized" ]
}
lab_check "SOAP AddPortMapping from $spoof: no answer, an HTTP refusal or $upnp_not_authorized" \
	spoof_soap_refused
lab_check "the gateway sent nothing from port 5351 to $spoof" \
	[ "$(spoof_answers)" = 0 ]
lab_check "nothing was made: the mapping table is empty" [ -z "$(gw_table)" ]
lab_check "nothing was made: no element in the daemon's nft table names $spoof" \
	not eval "lab_exec gw nft list table ip $table | grep -q '$spoof'"
lab_check "nothing was made: the carrier has none of ports 41000-41002" \
	not eval "carrier_has 'dport 4100[012] '"
lab_exec gw nft delete table ip abuse_probe

lab_say "1b. lan2 (on $LAB_GW_LAN2_IF) forges lan's address $lan1 (on $LAB_GW_LAN_IF)"
# Both addresses are inside the LAN prefixes: only the interface tells them apart. The
# guard's reverse-path check (fib saddr . iif) drops a datagram whose source the gateway
# routes through another interface; without it the daemon would map for lan.
rpf_count() {
	lab_exec gw nft list chain ip "$table" input |
		sed -n 's/.*fib saddr . iif oif missing counter packets \([0-9]*\).*/\1/p'
}
rpf_before=$(rpf_count)
lab_exec lan2 ip addr add "$lan1/32" dev "$LAB_LAN_IF"
pcp forge_pcp lan2 "$lan1" tcp 41010 600 3
natpmp forge_natpmp lan2 "$lan1" udp 41011 600 3
lab_exec lan2 ip addr del "$lan1/32" dev "$LAB_LAN_IF"
lab_check "PCP MAP forged as $lan1 from $LAB_GW_LAN2_IF: nothing was made" \
	eval "[ -z \"\$(gw_table)\" ] && ! carrier_has 'dport 41010 '"
lab_check "NAT-PMP map forged as $lan1 from $LAB_GW_LAN2_IF: nothing was made" \
	eval "[ -z \"\$(gw_table)\" ] && ! carrier_has 'dport 41011 '"
lab_check "the guard's reverse-path rule counted them ($rpf_before before, $(rpf_count) after)" \
	[ "$(rpf_count)" -ge "$((rpf_before + 2))" ]

# ---------------------------------------------------------------------------------------
lab_say "2. the per-host quota ($quota)"
pcp q_pcp1 lan "$lan1" tcp 42000
natpmp q_natpmp1 lan "$lan1" udp 42001
# shellcheck disable=SC2046
soapcall q_soap1 lan "$lan1" 10 AddPortMapping $(add_args 42002 TCP 42002 "$lan1")
lab_check "lan's PCP MAP succeeds" [ "$(jf q_pcp1 result)" = 0 ]
lab_check "lan's NAT-PMP map succeeds" [ "$(jf q_natpmp1 result)" = 0 ]
lab_check "lan's AddPortMapping succeeds (200)" [ "$(jf q_soap1 status)" = 200 ]
pcp q_pcp2 lan "$lan1" tcp 42010
natpmp q_natpmp2 lan "$lan1" udp 42011
# shellcheck disable=SC2046
soapcall q_soap2 lan "$lan1" 10 AddPortMapping $(add_args 42012 TCP 42012 "$lan1")
lab_check "lan's 4th mapping over PCP: USER_EX_QUOTA (10)" [ "$(jf q_pcp2 result)" = 10 ]
lab_check "... with a short error lifetime (RFC 6887 §7.4: 30 s)" \
	eval "[ \"$(jf q_pcp2 lifetime)\" -gt 0 ] && [ \"$(jf q_pcp2 lifetime)\" -le 300 ]"
lab_check "lan's 4th mapping over NAT-PMP: 4 (out of resources, RFC 6886 §3.5)" \
	[ "$(jf q_natpmp2 result)" = 4 ]
lab_check "lan's 4th mapping over UPnP IGD:$version: $upnp_quota" \
	eval "[ \"$(jf q_soap2 status)\" = 500 ] && [ \"$(jf q_soap2 error_code)\" = $upnp_quota ]"
pcp q_refresh lan "$lan1" tcp 42000
lab_check "a refresh of one of lan's mappings still succeeds (not a new one)" \
	[ "$(jf q_refresh result)" = 0 ]
pcp q_pcp3 lan2 "$lan2" tcp 42020
natpmp q_natpmp3 lan2 "$lan2" udp 42021
# shellcheck disable=SC2046
soapcall q_soap3 lan2 "$lan2" 10 AddPortMapping $(add_args 42022 TCP 42022 "$lan2")
lab_check "meanwhile lan2's PCP MAP succeeds" [ "$(jf q_pcp3 result)" = 0 ]
lab_check "meanwhile lan2's NAT-PMP map succeeds" [ "$(jf q_natpmp3 result)" = 0 ]
lab_check "meanwhile lan2's AddPortMapping succeeds (200)" [ "$(jf q_soap3 status)" = 200 ]
lab_check "the table holds lan's 3 and lan2's 3, nothing of the refused" \
	eval "[ \"\$(gw_table | wc -l)\" = 6 ] && ! gw_table | grep -q ':4201[012] '"
lab_check "the carrier has lan2's three" \
	eval "carrier_has 'dport 42020 ' && carrier_has 'dport 42021 ' && carrier_has 'dport 42022 '"
gw_table | sed 's/^/  /'

# ---------------------------------------------------------------------------------------
lab_say "3. a flood from lan: $flood_datagrams malformed datagrams, $flood_http broken HTTP requests"
gw_table >"$LAB_TMP/table.before"
lab_exec lan timeout 30 "$PY" "$client" flood-udp "$lan1" "$gw_lan" "$flood_datagrams" 1 \
	>"$LAB_TMP/flood_udp.json" 2>&1
echo "  UDP: $(cat "$LAB_TMP/flood_udp.json")"
lab_check "all $flood_datagrams datagrams went out" \
	[ "$(jf flood_udp sent)" = "$flood_datagrams" ]
# the HTTP flood keeps its half-open requests while stdin stays open (a fifo we hold)
mkfifo "$LAB_TMP/hold"
lab_bg lan "$LAB_TMP/flood_http.out" sh -c \
	"exec '$PY' '$client' flood-http '$lan1' '$gw_lan' '$control_port' '$desc_port' \
	    '$flood_http' 1 2 <'$LAB_TMP/hold'"
flooder=$LAB_LAST_PID
exec 7>"$LAB_TMP/hold"
lab_wait_for "grep -q outcomes '$LAB_TMP/flood_http.out'" 60
echo "  HTTP: $(head -1 "$LAB_TMP/flood_http.out")"
lab_check "the $flood_http broken HTTP requests were all sent" \
	grep -q "\"requests\": $flood_http" "$LAB_TMP/flood_http.out"
lab_check "the daemon is still running" daemon_alive

lab_say "   lan2 right after the flood (lan still holds its half-open requests)"
pcp f_pcp lan2 "$lan2" tcp 42020 600 "$budget"
natpmp f_natpmp lan2 "$lan2" udp 42021 600 "$budget"
soapcall f_soap lan2 "$lan2" "$budget" GetExternalIPAddress
lab_check "lan2's PCP MAP answered (SUCCESS) within $budget s: $(jf f_pcp ms) ms" \
	eval "[ \"$(jf f_pcp result)\" = 0 ] && within f_pcp"
lab_check "lan2's NAT-PMP request answered (0) within $budget s: $(jf f_natpmp ms) ms" \
	eval "[ \"$(jf f_natpmp result)\" = 0 ] && within f_natpmp"
lab_check "lan2's SOAP GetExternalIPAddress answered ($ext) within $budget s: $(jf f_soap ms) ms" \
	eval "[ \"$(jf f_soap out NewExternalIPAddress)\" = $ext ] && within f_soap"

lab_say "   lan stops: its half-open requests are closed"
exec 7>&-
lab_wait_for "grep -q released '$LAB_TMP/flood_http.out'" 5
lab_kill "$flooder"
pcp r_pcp lan "$lan1" tcp 42000 600 "$budget"
natpmp r_natpmp lan "$lan1" udp 42001 600 "$budget"
soapcall r_soap lan "$lan1" "$budget" GetExternalIPAddress
lab_check "lan's PCP MAP (a refresh) answered (SUCCESS) within $budget s: $(jf r_pcp ms) ms" \
	eval "[ \"$(jf r_pcp result)\" = 0 ] && within r_pcp"
lab_check "lan's NAT-PMP refresh answered (0) within $budget s: $(jf r_natpmp ms) ms" \
	eval "[ \"$(jf r_natpmp result)\" = 0 ] && within r_natpmp"
lab_check "lan's SOAP GetExternalIPAddress answered ($ext) within $budget s: $(jf r_soap ms) ms" \
	eval "[ \"$(jf r_soap out NewExternalIPAddress)\" = $ext ] && within r_soap"
gw_table >"$LAB_TMP/table.after"
lab_check "the table holds exactly what it held before the flood" \
	cmp -s "$LAB_TMP/table.before" "$LAB_TMP/table.after"
diff "$LAB_TMP/table.before" "$LAB_TMP/table.after" | sed 's/^/  /'

lab_say "the end"
lab_check "the daemon is still running" daemon_alive
lab_kill "$daemon_pid"
lab_check "no sanitizer report in the daemon log" \
	not grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$LAB_TMP/pcp-iwfd.log"

if [ "$LAB_FAILS" -ne 0 ]; then
	echo "--- daemon log (last 60 lines)"
	tail -60 "$LAB_TMP/pcp-iwfd.log"
	echo "FAIL - $LAB_FAILS check(s) failed"
	exit 1
fi
echo "PASS - abuse"
exit 0
