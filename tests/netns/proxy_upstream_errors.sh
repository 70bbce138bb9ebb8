#!/bin/bash
# proxy_upstream_errors.sh BUILD_DIR - hard errors on the proxy's upstream leg, with real
# kernels, a real carrier (miniupnpd) and real ICMP:
#
#   (i)   the carrier is stopped, so its UDP 5351 is closed and the gateway's MAP draws an
#         ICMP port unreachable: the LAN host's `pcp-iwfctl map` gets NETWORK_FAILURE
#         (result_code 7) with the short error lifetime (30 s, RFC 6887 §7.4) at once,
#         well before the proxy's client wait (5 s); `pcp-iwfctl status --json` shows the
#         server down with a last_error; the gateway's table and nft map hold nothing;
#   (ii)  two upstream_server lines, the first an address of the carrier where nothing
#         listens on 5351 (ICMP again), the second the real carrier: a map succeeds
#         promptly through the second (RFC 7488 §3: a hard ICMP error -> the next address
#         at once, MUST);
#   (iii) the carrier comes back (a restart, new epoch): a new map through the single
#         server of (i) succeeds again: the engine recovered from DOWN.
#
# Every wait is bounded: the client's -w, lab_wait_for's seconds, lab_hard_timeout.
# Exit: 0 pass, 1 fail, 77 skip.

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"

build="${1:-}"
daemon="$build/pcp-iwfd"
ctl="$build/pcp-iwfctl"
if [ -z "$build" ] || [ ! -x "$daemon" ] || [ ! -x "$ctl" ]; then
	echo "SKIP: no pcp-iwfd / pcp-iwfctl in build directory '${build}'" >&2
	exit 77
fi
lab_skip_unless_ready
lab_hard_timeout 240 "$0" "$@"

# An address on the carrier's inside interface where no PCP server listens: miniupnpd
# binds its NAT-PMP/PCP socket to the address listening_ip had when it started
# (LAB_CGN_IP), so this one answers 5351 with ICMP port unreachable.
DEAD_SERVER=198.51.100.3
# "at once": far below the proxy's client wait (PROXY_CLIENT_WAIT_MS, 5 s) and the
# first retransmission (RFC 6887 §8.1.1 IRT, 3 s)
PROMPT_MS=2000
# the client gives up after this long; NETWORK_FAILURE must come long before
CLIENT_WAIT_S=8

jget() {
	python3 -c 'import json, sys
obj = json.load(open(sys.argv[1]))
v = obj.get(sys.argv[2])
print("" if v is None else v)' "$1" "$2" 2>/dev/null
}

now_ms() { date +%s%3N; }

# lanctl NAME ARGS...: pcp-iwfctl from the LAN host toward the gateway; JSON to NAME.json,
# exit status to NAME.rc, how long it took (ms) to NAME.ms
lanctl() {
	local name="$1" rc t0 t1
	shift
	t0=$(now_ms)
	lab_exec lan timeout 30 "$ctl" "$@" -S "$LAB_GW_LAN_IP" -w "$CLIENT_WAIT_S" --json \
		>"$LAB_TMP/$name.json" 2>"$LAB_TMP/$name.err"
	rc=$?
	t1=$(now_ms)
	echo "$rc" >"$LAB_TMP/$name.rc"
	echo $((t1 - t0)) >"$LAB_TMP/$name.ms"
	printf '  [%s: exit %s, %s ms] %s\n' "$name" "$rc" "$((t1 - t0))" \
		"$(tr -d '\n' <"$LAB_TMP/$name.json")"
	[ -s "$LAB_TMP/$name.err" ] && sed 's/^/  stderr: /' "$LAB_TMP/$name.err"
	return 0
}
rc_is() { [ "$(cat "$LAB_TMP/$1.rc")" = "$2" ]; }
field_is() { [ "$(jget "$LAB_TMP/$1.json" "$2")" = "$3" ]; }
prompt() { [ "$(cat "$LAB_TMP/$1.ms")" -lt "$PROMPT_MS" ]; }

gwctl() { lab_exec gw "$ctl" -s "$LAB_TMP/ctl.sock" "$@"; }
gw_mappings() { gwctl list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
nft_elements() {
	lab_exec gw nft -j list map ip pcp_iwfd dnat_ports 2>/dev/null | python3 -c '
import json, sys
for o in json.load(sys.stdin)["nftables"]:
    if "map" in o:
        print(len(o["map"].get("elem", [])))'
}
# upstream_is ADDR STATE [error]: status --json names ADDR with STATE (and a last_error)
upstream_is() {
	gwctl status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
for u in s["upstream"]:
    if u["address"] == sys.argv[1]:
        ok = u["state"] == sys.argv[2]
        if len(sys.argv) > 3:
            ok = ok and bool(u.get("last_error"))
        sys.exit(0 if ok else 1)
sys.exit(1)' "$@"
}
carrier_has_rule() { lab_exec cgn nft list ruleset | grep -q "dnat ip to $LAB_GW_WAN_IP:$1\$"; }

# start_daemon NAME SERVER...: pcp-iwfd on the gateway (nat = local) with these upstreams
daemon_pid=""
start_daemon() {
	local name="$1" s conf="$LAB_TMP/$1.conf"
	shift
	{
		echo "lan_interface = $LAB_GW_LAN_IF"
		echo "wan_interface = $LAB_GW_WAN_IF"
		for s in "$@"; do
			echo "upstream_server = $s"
		done
		echo "upnp = no"
		echo "natpmp = no"
		echo "state_file = $LAB_TMP/$name.state"
		echo "control_socket = $LAB_TMP/ctl.sock"
	} >"$conf"
	lab_say "pcp-iwfd on the gateway ($name)"
	sed 's/^/    /' "$conf"
	lab_bg gw "$LAB_TMP/$name.log" "$daemon" -f -v -v -c "$conf"
	daemon_pid=$LAB_LAST_PID
	lab_wait_for "[ -S '$LAB_TMP/ctl.sock' ]" 10 || {
		cat "$LAB_TMP/$name.log"
		echo "FAIL - the daemon did not start"
		exit 1
	}
}
stop_daemon() {
	lab_kill "$daemon_pid"
	lab_wait_for "[ ! -e '$LAB_TMP/ctl.sock' ]" 5
}

lab_up || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }
lab_exec cgn ip addr add "$DEAD_SERVER/24" dev "$LAB_CGN_IN_IF" || exit 1
lab_check "nothing listens on $DEAD_SERVER:5351 (the carrier's socket is bound to $LAB_CGN_IP)" \
	sh -c "! ip netns exec $LAB_NS_CGN ss -H -lun | grep -Eq '(\\*|0\\.0\\.0\\.0|$DEAD_SERVER):5351 '"

# --- (i) the carrier is down: ICMP port unreachable -> NETWORK_FAILURE at once ---
start_daemon single "$LAB_CGN_IP"
# while the carrier is up: a map and its delete, so the server is known up and what
# follows is the way from up to down
lanctl warm_tcp map -p tcp -i 7099 -l 600
lab_check "(i) with the carrier up a map succeeds" rc_is warm_tcp 0
lanctl warm_del map -p tcp -i 7099 -l 0 -N "$(jget "$LAB_TMP/warm_tcp.json" nonce)"
lab_check "(i) ... and its delete" rc_is warm_del 0
lab_check "(i) status shows $LAB_CGN_IP up" upstream_is "$LAB_CGN_IP" up
lab_say "(i) the carrier stops; its port 5351 is closed"
lab_stop_carrier
lab_check "the carrier's port 5351 is closed" \
	sh -c "! ip netns exec $LAB_NS_CGN ss -H -lun 'sport = :5351' | grep -q ."

lanctl down_tcp map -p tcp -i 7100 -l 600
lab_check "(i) the map gets NETWORK_FAILURE (result_code 7)" \
	field_is down_tcp result_code 7
lab_check "(i) ... named NETWORK_FAILURE" field_is down_tcp result NETWORK_FAILURE
lab_check "(i) ... with the short error lifetime, 30 s (RFC 6887 §7.4)" \
	field_is down_tcp lifetime 30
lab_check "(i) ... exit status 1 (a PCP error result)" rc_is down_tcp 1
lab_check "(i) ... at once: under $PROMPT_MS ms, not after the client wait" prompt down_tcp
lab_check "(i) status shows $LAB_CGN_IP down with a last_error" \
	upstream_is "$LAB_CGN_IP" down error
gwctl status --json | sed 's/^/  status: /'
lab_check "(i) the gateway's table holds nothing" [ "$(gw_mappings)" = 0 ]
lab_check "(i) the gateway's nft map holds nothing" [ "$(nft_elements)" = 0 ]

# a second request while the server is known down: the same prompt answer
lanctl down_udp map -p udp -i 7101 -l 600
lab_check "(i) a UDP map while down: NETWORK_FAILURE, lifetime 30, at once" \
	sh -c "[ \"\$(cat $LAB_TMP/down_udp.ms)\" -lt $PROMPT_MS ] &&
		grep -q '\"result_code\": *7' $LAB_TMP/down_udp.json &&
		grep -q '\"lifetime\": *30' $LAB_TMP/down_udp.json"
lab_check "(i) still nothing in the table" [ "$(gw_mappings)" = 0 ]

# --- (iii) the carrier comes back: the engine recovers ---
lab_say "(iii) the carrier restarts (new epoch, no mappings)"
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not restart"; exit 1; }
lanctl back_tcp map -p tcp -i 7102 -l 600
lab_check "(iii) a new map succeeds again" rc_is back_tcp 0
lab_check "(iii) ... with the carrier's external address" \
	field_is back_tcp external_address "$LAB_CGN_EXT_IP"
lab_check "(iii) status shows $LAB_CGN_IP up again" upstream_is "$LAB_CGN_IP" up
lab_check "(iii) the carrier holds the gateway's rule" \
	lab_wait_for "carrier_has_rule $(jget "$LAB_TMP/back_tcp.json" external_port)" 5
lanctl back_del map -p tcp -i 7102 -l 0 -N "$(jget "$LAB_TMP/back_tcp.json" nonce)"
lab_check "(iii) the delete succeeds" rc_is back_del 0
stop_daemon

# --- (ii) failover: the first server answers with ICMP, the second is the carrier ---
start_daemon failover "$DEAD_SERVER" "$LAB_CGN_IP"
lab_say "(ii) two upstream servers: $DEAD_SERVER (closed) first, then $LAB_CGN_IP"
lanctl fo_tcp map -p tcp -i 7200 -l 600
lab_check "(ii) the map succeeds through the second server" rc_is fo_tcp 0
lab_check "(ii) ... with the carrier's external address" \
	field_is fo_tcp external_address "$LAB_CGN_EXT_IP"
lab_check "(ii) ... promptly: under $PROMPT_MS ms (no retransmission wait)" prompt fo_tcp
lab_check "(ii) status shows $DEAD_SERVER down with a last_error" \
	upstream_is "$DEAD_SERVER" down error
lab_check "(ii) status shows $LAB_CGN_IP up" upstream_is "$LAB_CGN_IP" up
gwctl status --json | sed 's/^/  status: /'
lab_check "(ii) the carrier holds the gateway's rule" \
	lab_wait_for "carrier_has_rule $(jget "$LAB_TMP/fo_tcp.json" external_port)" 5
lanctl fo_udp map -p udp -i 7201 -l 600
lab_check "(ii) a second map goes to the live server at once" \
	sh -c "[ \"\$(cat $LAB_TMP/fo_udp.rc)\" = 0 ] && [ \"\$(cat $LAB_TMP/fo_udp.ms)\" -lt $PROMPT_MS ]"
stop_daemon

if [ "$LAB_FAILS" -ne 0 ]; then
	for log in "$LAB_TMP"/single.log "$LAB_TMP"/failover.log; do
		echo "--- $log"
		cat "$log"
	done
	echo "FAIL - $LAB_FAILS check(s) failed"
	exit 1
fi
echo "PASS - proxy_upstream_errors"
exit 0
