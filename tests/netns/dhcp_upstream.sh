#!/bin/bash
# dhcp_upstream.sh BUILD_DIR - upstream_server = dhcp (RFC 7291 discovery, issue 7) with a
# real carrier (miniupnpd) and real traffic.
#
#   1. No server known yet: the gateway is the last NAT (docs/deployment.md "DHCP"): a LAN
#      map gets SUCCESS with the gateway's WAN address, traffic from the carrier side arrives.
#   2. `pcp-iwfctl set-upstream 198.51.100.1`: that mapping is re-created on the carrier
#      (its external address becomes the carrier's, traffic from the internet arrives), and a
#      new LAN map succeeds at the carrier with traffic. A malformed option 158 is refused
#      (exit 2) and changes nothing.
#   3. `set-upstream` with no server: every mapping is the gateway's own again.
#   4. The shipped hooks, run as their DHCP clients run them: the ISC dhclient exit hook
#      with option 158 as dhclient hands it over ("4 198 51 100 1"), the udhcpc hook with
#      $opt158 hex, the odhcp6c hook with $OPTION_86 (the carrier IPv4-mapped): the carrier
#      is back and the mappings with it.
#   5. Restart (SIGTERM): the servers come back from the state file before any DHCP call.
#   6. upstream_default_router = yes, no state, no DHCP call: the WAN default router (the
#      carrier, RFC 6887 §8.1) is the server; a LAN map reaches the carrier.
#   And `pcp-iwfd -t` names file:line for dhcp mixed with an address.
# Exit: 0 pass, 1 fail, 77 skip.

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"
contrib="$here/../../contrib/dhcp"

build="${1:-}"
daemon="$build/pcp-iwfd"
ctl="$build/pcp-iwfctl"
if [ -z "$build" ] || [ ! -x "$daemon" ] || [ ! -x "$ctl" ]; then
	echo "SKIP: no pcp-iwfd / pcp-iwfctl in build directory '${build}'" >&2
	exit 77
fi
lab_skip_unless_ready
lab_hard_timeout 280 "$0" "$@"

jget() {
	python3 -c 'import json, sys
obj = json.load(open(sys.argv[1]))
v = obj.get(sys.argv[2])
print("" if v is None else v)' "$1" "$2" 2>/dev/null
}
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
# "source address,address,..." of the servers in use
gw_upstream() {
	gwctl status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s["upstream_source"], ",".join(u["address"] for u in s["upstream"]))'
}
# the external address of the mapping of PROTO INTPORT in the gateway's list
gw_ext() {
	gwctl list --json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    if m["protocol"] == sys.argv[1] and m["internal_port"] == int(sys.argv[2]):
        print(m["external_address"], m["external_port"])' "$1" "$2"
}
gw_ext_is() { [ "$(gw_ext "$1" "$2" | cut -d' ' -f1)" = "$3" ]; }
# reach_mapping FROM PROTO INTPORT: a line from FROM arrives at the LAN host's INTPORT
# through the external address and port the gateway's list says
reach_mapping() {
	local e
	e=$(gw_ext "$2" "$3")
	[ -n "$e" ] && lab_reach "$1" "$2" "${e% *}" "${e#* }" lan "$3"
}
start_daemon() {
	lab_bg gw "$LAB_TMP/pcp-iwfd.log" "$daemon" -f -v -c "$1"
	daemon_pid=$LAB_LAST_PID
	lab_wait_for "[ -S '$LAB_TMP/ctl.sock' ]" 10 || {
		cat "$LAB_TMP/pcp-iwfd.log"
		echo "FAIL - daemon did not start"
		exit 1
	}
}
write_conf() {
	{
		echo "lan_interface = $LAB_GW_LAN_IF"
		echo "wan_interface = $LAB_GW_WAN_IF"
		echo "upstream_server = dhcp"
		[ "${2:-}" = router ] && echo "upstream_default_router = yes"
		echo "upnp = no"
		echo "natpmp = no"
		echo "state_file = $3"
		echo "control_socket = $LAB_TMP/ctl.sock"
	} >"$1"
}

lab_up || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }

# -t: dhcp and an address do not mix, with file:line
bad="$LAB_TMP/bad.conf"
printf 'lan_interface = lan0\nwan_interface = wan0\nupstream_server = dhcp\nupstream_server = %s\n' \
	"$LAB_CGN_IP" >"$bad"
"$daemon" -t -c "$bad" >"$LAB_TMP/t.out" 2>&1
t_rc=$?
lab_check "pcp-iwfd -t refuses dhcp mixed with an address (exit $t_rc)" [ "$t_rc" = 1 ]
lab_check "... naming file:line" grep -q "bad.conf:4: upstream_server: \"dhcp\" and addresses do not mix" "$LAB_TMP/t.out"

conf="$LAB_TMP/pcp-iwfd.conf"
write_conf "$conf" "" "$LAB_TMP/state"
lab_say "pcp-iwfd with upstream_server = dhcp"
sed 's/^/    /' "$conf"
start_daemon "$conf"

lab_say "1. no server known: the gateway is the last NAT"
lab_check "status: source dhcp, no server" [ "$(gw_upstream)" = "dhcp " ]
lanctl map_tcp map -p tcp -i 7000 -l 600
lab_check "tcp map SUCCESS" rc_is map_tcp 0
lab_check "... with the gateway's WAN address" \
	[ "$(jget "$LAB_TMP/map_tcp.json" external_address)" = "$LAB_GW_WAN_IP" ]
lab_check "traffic from the carrier side arrives" reach_mapping cgn tcp 7000

lab_say "2. pcp-iwfctl set-upstream $LAB_CGN_IP"
gwctl set-upstream "$LAB_CGN_IP" >"$LAB_TMP/set.out"
set_rc=$?
sed 's/^/  /' "$LAB_TMP/set.out"
lab_check "set-upstream exit 0 (got $set_rc)" [ "$set_rc" = 0 ]
lab_check "status: the carrier is the server" [ "$(gw_upstream)" = "dhcp $LAB_CGN_IP" ]
lab_check "the last-NAT mapping is re-created on the carrier" \
	lab_wait_for "gw_ext_is tcp 7000 $LAB_CGN_EXT_IP" 15
lab_check "... and traffic from the internet reaches it" reach_mapping inet tcp 7000
lanctl map_udp map -p udp -i 7001 -l 600
lab_check "a new udp map SUCCESS" rc_is map_udp 0
lab_check "... at the carrier" [ "$(jget "$LAB_TMP/map_udp.json" external_address)" = "$LAB_CGN_EXT_IP" ]
lab_check "... with traffic" reach_mapping inet udp 7001
gwctl set-upstream --dhcp4-hex 05c633640100 >/dev/null 2>"$LAB_TMP/bad_hex.err"
bad_rc=$?
lab_check "a malformed option 158 is refused with exit 2 (got $bad_rc)" [ "$bad_rc" = 2 ]
lab_check "... and changes nothing" [ "$(gw_upstream)" = "dhcp $LAB_CGN_IP" ]

lab_say "3. set-upstream with no server: the mappings are the gateway's own"
lab_check "set-upstream (none) exit 0" gwctl set-upstream
lab_check "status: no server" [ "$(gw_upstream)" = "dhcp " ]
lab_check "tcp mapping: the gateway's WAN address" gw_ext_is tcp 7000 "$LAB_GW_WAN_IP"
lab_check "... traffic from the carrier side arrives" reach_mapping cgn tcp 7000

lab_say "4. the hooks, as their DHCP clients run them"
lab_exec gw env reason=BOUND interface="$LAB_GW_WAN_IF" new_pcp_server="4 198 51 100 1" \
	PCP_IWFCTL="$ctl" PCP_IWFD_SOCKET="$LAB_TMP/ctl.sock" PCP_IWFD_WAN="$LAB_GW_WAN_IF" \
	bash -c ". '$contrib/dhclient-exit-hooks.d/pcp-iwfd'"
lab_check "dhclient hook: the carrier is the server" [ "$(gw_upstream)" = "dhcp $LAB_CGN_IP" ]
lab_check "... the mappings go back to the carrier" \
	lab_wait_for "gw_ext_is tcp 7000 $LAB_CGN_EXT_IP && gw_ext_is udp 7001 $LAB_CGN_EXT_IP" 15
lab_check "... with traffic" reach_mapping inet udp 7001
lab_exec gw env reason=BOUND interface=other0 new_pcp_server="" \
	PCP_IWFCTL="$ctl" PCP_IWFD_SOCKET="$LAB_TMP/ctl.sock" PCP_IWFD_WAN="$LAB_GW_WAN_IF" \
	bash -c ". '$contrib/dhclient-exit-hooks.d/pcp-iwfd'"
lab_check "dhclient hook: another interface's lease changes nothing" \
	[ "$(gw_upstream)" = "dhcp $LAB_CGN_IP" ]
lab_exec gw env opt158=04c6336401 PCP_IWFCTL="$ctl" PCP_IWFD_SOCKET="$LAB_TMP/ctl.sock" \
	"$contrib/udhcpc-pcp-iwfd" renew
lab_check "udhcpc hook (renew, same server): unchanged" [ "$(gw_upstream)" = "dhcp $LAB_CGN_IP" ]
lab_exec gw env OPTION_86=00000000000000000000ffffc6336401 PCP_IWFCTL="$ctl" \
	PCP_IWFD_SOCKET="$LAB_TMP/ctl.sock" "$contrib/odhcp6c-pcp-iwfd" "$LAB_GW_WAN_IF" bound
lab_check "odhcp6c hook (option 86, IPv4-mapped): the carrier" \
	[ "$(gw_upstream)" = "dhcp $LAB_CGN_IP" ]
lab_check "... mappings still at the carrier" gw_ext_is tcp 7000 "$LAB_CGN_EXT_IP"

lab_say "5. restart: the servers come back from the state file"
lab_kill "$daemon_pid"
start_daemon "$conf"
lab_check "status after restart: the carrier, before any DHCP call" \
	[ "$(gw_upstream)" = "dhcp $LAB_CGN_IP" ]
lab_check "the udp mapping is back, at the carrier" \
	lab_wait_for "gw_ext_is udp 7001 $LAB_CGN_EXT_IP" 10
lab_check "... with traffic" reach_mapping inet udp 7001
lab_kill "$daemon_pid"

lab_say "6. upstream_default_router = yes, nothing handed over: the WAN default router"
conf2="$LAB_TMP/pcp-iwfd-router.conf"
write_conf "$conf2" router "$LAB_TMP/state2"
start_daemon "$conf2"
lab_check "status: the default router ($LAB_CGN_IP)" [ "$(gw_upstream)" = "default_router $LAB_CGN_IP" ]
lanctl map_router map -p udp -i 7002 -l 600
lab_check "udp map SUCCESS at the carrier" \
	[ "$(jget "$LAB_TMP/map_router.json" external_address)" = "$LAB_CGN_EXT_IP" ]
lab_check "... with traffic" reach_mapping inet udp 7002
lab_kill "$daemon_pid"
lab_check "daemon left no control socket" [ ! -e "$LAB_TMP/ctl.sock" ]

if [ "$LAB_FAILS" -ne 0 ]; then
	echo "--- daemon log"; cat "$LAB_TMP/pcp-iwfd.log"
	echo "FAIL - $LAB_FAILS check(s) failed"
	exit 1
fi
echo "PASS - dhcp_upstream"
exit 0
