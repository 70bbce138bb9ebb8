#!/bin/bash
# faults.sh BUILD_DIR SCENARIO - durability under faults (issue 7) with real kernels and a
# real carrier (miniupnpd on cgn): nat = local + upstream, 200 mappings.
#
# The LAN host makes 200 mappings through the gateway with pcp-iwfctl (100 TCP + 100 UDP,
# parallel batches; max_mappings_per_host is raised for it). Then, per SCENARIO:
#
#   restart          (a) the daemon gets SIGTERM and is started again;
#                    (b) the daemon gets SIGKILL (the last group commit is all there is)
#                    and is started again.
#   carrier_restart  (c) the carrier reboots: miniupnpd is stopped, its nft chains are
#                    flushed (a reboot loses them), it starts again with its epoch at 0
#                    (system_uptime=no). Nothing is sent to the daemon but the carrier's
#                    unsolicited ANNOUNCE to 224.0.0.1:5350 (RFC 6887 §14.1.3); the daemon
#                    must see the epoch jump (§8.5) and re-create all 200 upstream (§14).
#   carrier_restart_silent  (c) again, but the gateway drops the carrier's ANNOUNCE (as
#                    when the carrier's PCP server is more than one hop away and its
#                    224.0.0.1 multicast never reaches the home, or the one datagram
#                    miniupnpd 2.3.1 sends is lost). The daemon sends nothing upstream on
#                    its own before a client's refresh or its own renewal halfway through a
#                    grant; its liveness probe (an ANNOUNCE request every
#                    upstream_probe_interval seconds while it holds mappings there, RFC 6887
#                    §14.1.2; 2 s in this test) finds the epoch jump instead.
#   carrier_down     (d) miniupnpd is stopped for 20 s, its rules staying in the kernel (a
#                    process that died; miniupnpd 2.3.1 reloads nothing, so its restart
#                    is a loss of state with a new epoch). Meanwhile a new request from the
#                    LAN gets NETWORK_FAILURE or NO_RESOURCES within 10 s with a short error
#                    lifetime, the existing mappings keep their local rules (and, as the
#                    carrier's kernel rules stay too, their traffic), and `pcp-iwfctl status
#                    --json` shows the server down with a last_error. After the restart the
#                    server is up again without any client request and a new map succeeds.
#
# After each fault, within 60 s (RECOVER_S) of it: every mapping answered SUCCESS is in
# `pcp-iwfctl list --json` with the same external address and port and granted; the
# carrier's prerouting chain holds exactly one DNAT rule per mapping, to the gateway's port
# (same external ports, nothing duplicated, nothing left behind) and its filter chain one
# rule per mapping; the gateway's nft DNAT map holds exactly 200 elements; and real TCP
# and UDP from the internet host reach a listener on the LAN host through 5 TCP and 5 UDP
# of them.
#
#   wan_change       (e) the gateway's WAN address changes as a DHCP renew with a new lease
#                    does it: the carrier releases the old lease (its NAT state for
#                    198.51.100.2 goes, as a BNG's does when a subscriber's lease ends), then
#                    198.51.100.2 is deleted from wan0, 198.51.100.3 added and the default
#                    route put back; the carrier routes the LAN to the new address. The daemon
#                    sees it through rtnetlink (src/wanwatch.c), moves its upstream socket to
#                    the new source and re-creates all 200 upstream from the new address with
#                    their nonces (RFC 6970 §5.10, RFC 7648 §3.5); the carrier's epoch did not
#                    move, so nothing else would make it. Checked as after (a)-(d): the same
#                    external ports, the carrier's rules all to the new address and none left
#                    to the old, the gateway's map, traffic; the external address, and so the
#                    daemon's Epoch, stays (RFC 6887 §8.5: it is the carrier's). Then the same
#                    lease is renewed (delete and re-add 198.51.100.3): one debounced
#                    non-change, nothing re-created.
# Every wait is bounded; the lab cleans up on exit (scripts/lab.sh). Diagnostics: the
# daemon runs with -v; LAB_CARRIER_DEBUG=1 logs miniupnpd to $LAB_TMP/miniupnpd.log
# (keep it with LAB_KEEP_TMP=1).
# Exit: 0 pass, 1 fail, 77 skip.

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"

build="${1:-}"
scenario="${2:-}"
daemon="$build/pcp-iwfd"
ctl="$build/pcp-iwfctl"
case $scenario in
restart | carrier_restart | carrier_restart_silent | carrier_down | wan_change) ;;
*)
	echo "usage: $0 BUILD_DIR restart|carrier_restart|carrier_restart_silent|carrier_down|wan_change" >&2
	exit 2
	;;
esac
if [ -z "$build" ] || [ ! -x "$daemon" ] || [ ! -x "$ctl" ]; then
	echo "SKIP: no pcp-iwfd / pcp-iwfctl in build directory '${build}'" >&2
	exit 77
fi
lab_skip_unless_ready
lab_hard_timeout 290 "$0" "$@"
# our own namespace names, told apart from the other lab tests' (iwfdPID-*)
LAB_PREFIX="${LAB_PREFIX:-fault$$}"

NMAP=100		# per protocol
NTOTAL=$((2 * NMAP))
BASE_PORT=20000
BATCH=25		# pcp-iwfctl clients in flight at once
LIFETIME=3600		# no renewal falls inside a run
RECOVER_S=60		# issue 7: everything back within 60 s
ERROR_S=10		# issue 7: a clean error within 10 s while the upstream is down
DOWN_S=20		# (d): how long the carrier stays down
# the sample that must carry traffic: indexes into the 100 ports of each protocol
SAMPLE="0 24 49 74 99"
# a port outside the 200 for the requests made while the carrier is down
NEW_PORT=$((BASE_PORT + NMAP + 50))

jget() {
	python3 -c 'import json, sys
obj = json.load(open(sys.argv[1]))
v = obj.get(sys.argv[2])
print("" if v is None else v)' "$1" "$2" 2>/dev/null
}

# lanctl NAME ARGS...: pcp-iwfctl from the LAN host toward the gateway; JSON to NAME.json,
# exit status to NAME.rc, milliseconds taken to NAME.ms
lanctl() {
	local name="$1" rc t0 t1
	shift
	t0=${EPOCHREALTIME/./}
	lab_exec lan timeout 30 "$ctl" "$@" -S "$LAB_GW_LAN_IP" -w 8 --json \
		>"$LAB_TMP/$name.json" 2>"$LAB_TMP/$name.err"
	rc=$?
	t1=${EPOCHREALTIME/./}
	echo "$rc" >"$LAB_TMP/$name.rc"
	echo $(((t1 - t0) / 1000)) >"$LAB_TMP/$name.ms"
}
rc_is() { [ "$(cat "$LAB_TMP/$1.rc" 2>/dev/null)" = "$2" ]; }
show() {
	printf '  [%s: exit %s, %s ms] %s\n' "$1" "$(cat "$LAB_TMP/$1.rc")" \
		"$(cat "$LAB_TMP/$1.ms")" "$(tr -d '\n' <"$LAB_TMP/$1.json")"
}
gwctl() { lab_exec gw timeout 10 "$ctl" -s "$LAB_TMP/ctl.sock" "$@"; }
# the gateway's mappings, one "proto intport extaddr extport" a line, sorted
gw_list() {
	gwctl list --json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    print(m["protocol"], m["internal_port"], m["external_address"], m["external_port"])' |
		sort
}
# what the carrier must hold for the gateway's list: "proto extport gwwan:localport"
# (gwwan: $1, default the gateway's WAN address)
gw_carrier_expect() {
	gwctl list --json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    print(m["protocol"], m["external_port"], "%s:%d" % (sys.argv[1], m["local_port"]))' \
		"${1:-$LAB_GW_WAN_IP}" | sort
}
# mappings of the gateway's list that are not granted (renewing, ...)
gw_not_granted() {
	gwctl list --json | python3 -c '
import json, sys
print(sum(1 for m in json.load(sys.stdin) if m["state"] != "granted"))'
}
nft_elements() {
	lab_exec gw nft -j list map ip pcp_iwfd dnat_ports 2>/dev/null | python3 -c '
import json, sys
for o in json.load(sys.stdin)["nftables"]:
    if "map" in o:
        print(len(o["map"].get("elem", [])))'
}
# upstream FIELD: a field of the first upstream server in status --json
upstream() {
	gwctl status --json | python3 -c '
import json, sys
v = json.load(sys.stdin)["upstream"][0].get(sys.argv[1])
print("" if v is None else v)' "$1"
}
carrier_rule_count() { lab_carrier_mappings | wc -l; }
carrier_filter_rules() { lab_chain_rules cgn inet "$LAB_CGN_NFT_TABLE" miniupnpd; }
# ANNOUNCE-sized PCP datagrams to port 5350 seen arriving on the gateway's WAN side
announce_seen() {
	lab_exec gw nft list chain ip faults_probe seen 2>/dev/null |
		sed -n 's/.*counter packets \([0-9]*\) .*/\1/p' | head -n 1
}

# how often the daemon logged that the upstream server lost state
lost_reports() { grep -c 'upstream server 0 lost state' "$log"; }
# how often it re-created all of them there
recreations() { grep -c "upstream server 0: re-creating $NTOTAL mapping(s)" "$log"; }

daemon_pid=""
log=""
# start_daemon NAME: pcp-iwfd with its log in pcp-iwfd-NAME.log
start_daemon() {
	log="$LAB_TMP/pcp-iwfd-$1.log"
	lab_bg gw "$log" "$daemon" -f -v -c "$conf"
	daemon_pid=$LAB_LAST_PID
	lab_wait_for "[ -S '$LAB_TMP/ctl.sock' ] && gwctl status >/dev/null" 10 || {
		cat "$log"
		echo "FAIL - daemon did not start ($1)"
		exit 1
	}
}

# make_mappings: 100 TCP + 100 UDP from the LAN host, BATCH clients at a time; the ones
# answered SUCCESS go to $LAB_TMP/made as "proto intport extaddr extport"
make_mappings() {
	local proto i n=0 port t0 pids=""
	t0=$EPOCHSECONDS
	for proto in tcp udp; do
		for i in $(seq 0 $((NMAP - 1))); do
			port=$((BASE_PORT + i))
			lanctl "map_${proto}_$port" map -p "$proto" -i "$port" -l "$LIFETIME" &
			pids="$pids $!"
			n=$((n + 1))
			if [ $((n % BATCH)) = 0 ]; then
				# shellcheck disable=SC2086
				wait $pids
				pids=""
			fi
		done
	done
	# shellcheck disable=SC2086
	[ -z "$pids" ] || wait $pids
	# one python for all 200 answers (a process per file is slow on a busy machine)
	python3 - "$LAB_TMP" "$BASE_PORT" "$NMAP" >"$LAB_TMP/made" <<-'PY'
	import json, os, sys
	tmp, base, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
	for proto in ("tcp", "udp"):
	    for port in range(base, base + n):
	        name = os.path.join(tmp, "map_%s_%d" % (proto, port))
	        rc = open(name + ".rc").read().strip()
	        text = open(name + ".json").read()
	        if rc != "0":
	            print("  %s %d: exit %s %s" % (proto, port, rc, text.strip()), file=sys.stderr)
	            continue
	        m = json.loads(text)
	        print(proto, port, m["external_address"], m["external_port"])
	PY
	sort -o "$LAB_TMP/made" "$LAB_TMP/made"
	echo "  $(wc -l <"$LAB_TMP/made") mapping(s) made in $((EPOCHSECONDS - t0)) s"
}

# arrived PROTO ADDR EPORT OUT TEXT: TEXT, sent to ADDR:EPORT, is in OUT within 3 s; else
# (a NOTE with what the NATs hold, as lab_reach does) one more line to the listener,
# which still waits, and 3 s more
arrived() {
	lab_wait_for "grep -q '$5' '$4'" 3 && return 0
	echo "    NOTE: $1 inet -> $2:$3 did not arrive in 3 s; one more line"
	lab_reach_diag "$1"
	lab_send inet "$1" "$2" "$3" "$5-again" >/dev/null 2>&1
	lab_wait_for "grep -q '$5' '$4'" 3
}
# traffic WHAT: TCP and UDP from the internet host through the sample mappings; every
# listener first, then every sender at once, then every arrival
traffic() {
	local what=$1 proto i port addr eport out text pids="" senders="" item
	local -a items=()
	for proto in tcp udp; do
		for i in $SAMPLE; do
			port=$((BASE_PORT + i))
			read -r _ _ addr eport < <(grep "^$proto $port " "$LAB_TMP/made")
			out="$LAB_TMP/recv.${what//[^a-z0-9-]/_}.$proto.$port"
			text="${what//[^a-z0-9-]/_}-$proto-$port-$RANDOM"
			lab_listen lan "$proto" "$port" "$out" || true
			pids="$pids $LAB_LAST_PID"
			items+=("$proto $port $addr $eport $out $text")
		done
	done
	for item in "${items[@]}"; do
		read -r proto port addr eport out text <<<"$item"
		lab_send inet "$proto" "$addr" "$eport" "$text" &
		senders="$senders $!"
	done
	# only the senders: the daemon and the listeners are this shell's children too
	# shellcheck disable=SC2086
	wait $senders
	for item in "${items[@]}"; do
		read -r proto port addr eport out text <<<"$item"
		lab_check "$what: $proto from the internet reaches the LAN host ($addr:$eport -> :$port)" \
			arrived "$proto" "$addr" "$eport" "$out" "$text"
	done
	for item in $pids; do
		lab_kill "$item"
	done
}
# verify WHAT DEADLINE T0: everything back by DEADLINE ($EPOCHSECONDS) since the fault at T0
verify() {
	local what=$1 deadline=$2 t0=$3
	lab_check "$what: every mapping is in pcp-iwfctl list with the same external address and port" \
		lab_wait_for "[ \"\$(gw_list)\" = \"\$(cat '$LAB_TMP/made')\" ]" "$(lab_secs_left "$deadline")"
	lab_check "$what: every mapping is granted (none still renewing)" \
		lab_wait_for "[ \"\$(gw_not_granted)\" = 0 ]" "$(lab_secs_left "$deadline")"
	lab_check "$what: the carrier holds exactly one DNAT rule per mapping, same ports, to the gateway's port" \
		lab_wait_for "[ \"\$(lab_carrier_mappings)\" = \"\$(gw_carrier_expect)\" ]" "$(lab_secs_left "$deadline")"
	lab_check "$what: ... $NTOTAL of them, nothing duplicated or left behind ($(carrier_rule_count))" \
		[ "$(carrier_rule_count)" = "$NTOTAL" ]
	lab_check "$what: the carrier's filter chain holds $NTOTAL rules" \
		lab_wait_for "[ \"\$(carrier_filter_rules)\" = $NTOTAL ]" "$(lab_secs_left "$deadline")"
	lab_check "$what: the gateway's nft map holds exactly $NTOTAL elements" \
		lab_wait_for "[ \"\$(nft_elements)\" = $NTOTAL ]" "$(lab_secs_left "$deadline")"
	echo "  $what: $((EPOCHSECONDS - t0)) s after the fault: list $(gw_list | wc -l)," \
		"carrier DNAT $(carrier_rule_count), carrier filter $(carrier_filter_rules)," \
		"gateway nft map $(nft_elements)"
	traffic "$what"
	lab_check "$what: all of it within $RECOVER_S s (took $((EPOCHSECONDS - t0)) s)" \
		[ "$EPOCHSECONDS" -le "$deadline" ]
}

# the lab's carrier, with a counter for PCP arriving at the gateway's port 5350 (which
# drops it in carrier_restart_silent: a carrier server more than one hop away, whose
# multicast ANNOUNCE never reaches the home)
announce_verdict=accept
[ "$scenario" = carrier_restart_silent ] && announce_verdict=drop
lab_up || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }
lab_exec gw nft -f - <<-EOF || exit 1
	table ip faults_probe {
		chain seen {
			type filter hook prerouting priority raw; policy accept;
			iifname "$LAB_GW_WAN_IF" ip saddr $LAB_CGN_IP udp sport 5351 udp dport 5350 counter $announce_verdict
		}
	}
EOF

conf="$LAB_TMP/pcp-iwfd.conf"
state="$LAB_TMP/state"
{
	echo "lan_interface = $LAB_GW_LAN_IF"
	echo "wan_interface = $LAB_GW_WAN_IF"
	echo "upstream_server = $LAB_CGN_IP"
	echo "upstream_probe_interval = 2"	# a silent carrier restart is seen at once
	echo "upnp = no"
	echo "natpmp = no"
	echo "max_mappings_per_host = $((NTOTAL + 16))"
	echo "state_file = $state"
	echo "control_socket = $LAB_TMP/ctl.sock"
} >"$conf"
sed 's/^/    /' "$conf"

start_daemon first
lab_say "the LAN host makes $NTOTAL mappings ($NMAP TCP + $NMAP UDP, $BATCH at a time)"
make_mappings
lab_check "$NTOTAL mappings answered SUCCESS" [ "$(wc -l <"$LAB_TMP/made")" = "$NTOTAL" ]
t0=$EPOCHSECONDS
verify initial $((t0 + RECOVER_S)) "$t0"

# after_daemon_restart WHAT: the restored table is refreshed upstream, nothing dropped
after_daemon_restart() {
	local what=$1 t0=$2 deadline=$(($2 + RECOVER_S))
	lab_check "$what: all $NTOTAL restored, none dropped" \
		grep -q "$NTOTAL mapping(s) restored, 0 expired while down, 0 failed" "$log"
	# after a 0-5 s jitter (RFC 6887 §14.1.3), so wait for it before looking upstream
	lab_check "$what: the upstream mappings are refreshed with their stored nonces" \
		lab_wait_for "grep -q 're-creating $NTOTAL mapping(s)' '$log'" "$(lab_secs_left "$deadline")"
	verify "$what" "$deadline" "$t0"
	lab_check "$what: no mapping was removed" eval "! grep -q 'mapping removed' '$log'"
}

# after_carrier_restart WHAT T0 EPOCH: the daemon saw the loss of state and re-created
# (lost0, recreate0: the counts of its log lines before the fault)
after_carrier_restart() {
	local what=$1 t0=$2 epoch_before=$3 deadline=$(($2 + RECOVER_S))
	lab_check "$what: the daemon notices the carrier lost state (RFC 6887 §8.5)" \
		lab_wait_for "[ \"\$(lost_reports)\" -gt $lost0 ]" "$(lab_secs_left "$deadline")"
	echo "  ANNOUNCEs from the carrier counted on the gateway's wan0: $(announce_seen)"
	echo "  upstream epoch $(upstream epoch) (was $epoch_before), state $(upstream state)"
	lab_check "$what: status shows the server up again, by itself" \
		lab_wait_for "[ \"\$(upstream state)\" = up ]" "$(lab_secs_left "$deadline")"
	# the epoch a carrier that never restarted would show now is at least
	# epoch_before + the seconds since the fault (less 1 for rounding); a restarted
	# one counts from 0 since then
	local since=$(($(date +%s) - t0))
	lab_check "$what: ... with the carrier's new epoch ($(upstream epoch) < $epoch_before + ${since} s - 1)" \
		[ "$(upstream epoch)" -lt "$((epoch_before + since - 1))" ]
	lab_check "$what: the daemon re-creates all $NTOTAL upstream" \
		lab_wait_for "[ \"\$(recreations)\" -gt $recreate0 ]" \
		"$(lab_secs_left "$deadline")"
	verify "$what" "$deadline" "$t0"
	lab_check "$what: no mapping was removed" eval "! grep -q 'mapping removed' '$log'"
}

# the daemon's own Epoch (status)
gw_epoch() {
	gwctl status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["epoch"])'
}
# how often the daemon logged a change of its WAN address
wan_changes() { grep -c 'changed its IPv4 address' "$log"; }

case $scenario in
restart)
	sleep 2
	lab_say "(a) SIGTERM, then a restart"
	lab_kill "$daemon_pid"
	lab_check "(a) SIGTERM: the state was saved" grep -q "state saved to" "$log"
	lab_check "(a) the nft rules stay while the daemon is down" [ "$(nft_elements)" = "$NTOTAL" ]
	t0=$EPOCHSECONDS
	start_daemon sigterm
	after_daemon_restart "(a)" "$t0"

	sleep 2
	lab_say "(b) SIGKILL, then a restart"
	kill -KILL "$daemon_pid"
	lab_kill "$daemon_pid"
	t0=$EPOCHSECONDS
	start_daemon sigkill
	after_daemon_restart "(b)" "$t0"
	;;

carrier_restart | carrier_restart_silent)
	sleep 2
	epoch=$(upstream epoch)
	announce0=$(announce_seen)
	lost0=$(lost_reports)
	recreate0=$(recreations)
	tag="(c)"
	[ "$scenario" = carrier_restart_silent ] && tag="(c, no ANNOUNCE)"
	lab_say "$tag the carrier reboots at its epoch $epoch: stop, flush its chains, start"
	lab_stop_carrier
	lab_check "$tag the carrier's chains are empty" [ "$(carrier_rule_count)" = 0 ]
	t0=$EPOCHSECONDS
	lab_start_carrier || { echo "FAIL - the carrier did not restart"; exit 1; }
	echo "  the carrier answers again after $((EPOCHSECONDS - t0)) s"
	lab_check "$tag the carrier's ANNOUNCE arrives on the gateway's wan0 ($announce_verdict there)" \
		lab_wait_for "[ \"\$(announce_seen)\" -gt '${announce0:-0}' ]" 10
	after_carrier_restart "$tag" "$t0" "$epoch"
	;;

carrier_down)
	sleep 2
	epoch=$(upstream epoch)
	lost0=$(lost_reports)
	recreate0=$(recreations)
	lab_say "(d) the carrier stops for $DOWN_S s; its rules stay in the kernel"
	t_stop=$EPOCHSECONDS
	lab_pause_carrier
	lab_check "(d) its port 5351 is closed" \
		lab_wait_for "! lab_port_bound cgn udp 5351" 5
	lab_check "(d) its $NTOTAL rules stay in the kernel" [ "$(carrier_rule_count)" = "$NTOTAL" ]
	for proto in tcp udp; do
		lanctl "down_$proto" map -p "$proto" -i "$NEW_PORT" -l "$LIFETIME"
		show "down_$proto"
		res=$(jget "$LAB_TMP/down_$proto.json" result)
		lab_check "(d) a new $proto map gets NETWORK_FAILURE or NO_RESOURCES ($res)" \
			eval "rc_is down_$proto 1 && { [ '$res' = NETWORK_FAILURE ] || [ '$res' = NO_RESOURCES ]; }"
		lab_check "(d) ... within $ERROR_S s" [ "$(cat "$LAB_TMP/down_$proto.ms")" -lt $((ERROR_S * 1000)) ]
		lab_check "(d) ... with a short error lifetime (<= 30 s)" \
			eval "[ -n \"\$(jget '$LAB_TMP/down_$proto.json' lifetime)\" ] && [ \"\$(jget '$LAB_TMP/down_$proto.json' lifetime)\" -le 30 ]"
	done
	gwctl status --json | sed 's/^/  status: /'
	lab_check "(d) status shows the server down" [ "$(upstream state)" = down ]
	lab_check "(d) ... with its last_error ($(upstream last_error))" [ -n "$(upstream last_error)" ]
	lab_check "(d) the existing mappings stay in pcp-iwfctl list" \
		[ "$(gw_list)" = "$(cat "$LAB_TMP/made")" ]
	lab_check "(d) ... and keep their local nft rules ($(nft_elements))" [ "$(nft_elements)" = "$NTOTAL" ]
	traffic "(d)-down"
	# the rest of the 20 s
	sleep "$(lab_secs_left $((t_stop + DOWN_S)))"
	lab_check "(d) the existing mappings are still listed after $((DOWN_S)) s" \
		[ "$(gw_list)" = "$(cat "$LAB_TMP/made")" ]
	lab_check "(d) ... with their local nft rules" [ "$(nft_elements)" = "$NTOTAL" ]
	t0=$EPOCHSECONDS
	lab_say "(d) the carrier starts again after $((t0 - t_stop)) s"
	lab_start_carrier || { echo "FAIL - the carrier did not restart"; exit 1; }
	after_carrier_restart "(d)" "$t0" "$epoch"
	lanctl back_tcp map -p tcp -i "$NEW_PORT" -l "$LIFETIME"
	show back_tcp
	lab_check "(d) a new map succeeds again" rc_is back_tcp 0
	lanctl back_del map -p tcp -i "$NEW_PORT" -l 0 -N "$(jget "$LAB_TMP/back_tcp.json" nonce)"
	lab_check "(d) ... and its delete" rc_is back_del 0
	lab_check "(d) the carrier holds the $NTOTAL again, nothing left behind" \
		lab_wait_for "[ \"\$(lab_carrier_mappings)\" = \"\$(gw_carrier_expect)\" ] && [ \"\$(carrier_rule_count)\" = $NTOTAL ]" 5
	;;
wan_change)
	sleep 2
	old_ip=$LAB_GW_WAN_IP
	new_ip=198.51.100.3
	epoch=$(gw_epoch)
	recreate0=$(recreations)
	lab_say "(e) the gateway's WAN address changes, as a DHCP renew with a new lease: $old_ip -> $new_ip"
	# the carrier's NAT state for the old lease goes with it, as a BNG's does when a
	# subscriber's lease ends: so the ports are free for the new address again
	lab_carrier_release "$old_ip"
	lab_check "(e) the carrier holds no rule for the old address $old_ip" \
		eval "[ \"\$(carrier_rule_count)\" = 0 ] && [ \"\$(carrier_filter_rules)\" = 0 ]"
	t0=$EPOCHSECONDS
	lab_gw_wan_readdress "$new_ip" || { echo "FAIL - cannot change the WAN address"; exit 1; }
	deadline=$((t0 + RECOVER_S))
	lab_check "(e) the daemon sees the change (rtnetlink)" \
		lab_wait_for "grep -q 'changed its IPv4 address: $old_ip -> $new_ip' '$log'" 10
	lab_check "(e) ... once (the delete and the add are one change)" [ "$(wan_changes)" = 1 ]
	lab_check "(e) its upstream socket leaves from $new_ip now" \
		lab_wait_for "lab_exec gw ss -Hun dst $LAB_CGN_IP:5351 | grep -qE ' ${new_ip//./\\.}(%[^ ]*)?:'" 5
	lab_check "(e) it re-creates all $NTOTAL upstream" \
		lab_wait_for "[ \"\$(recreations)\" -gt $recreate0 ]" "$(lab_secs_left "$deadline")"
	# verify: the carrier's rules to the new address, the same external ports, none left
	# pointing at the old one, nothing duplicated, the gateway's map, traffic
	verify "(e)" "$deadline" "$t0"
	lab_check "(e) the list still has the same external addresses and ports" \
		[ "$(gw_list)" = "$(cat "$LAB_TMP/made")" ]
	lab_check "(e) no mapping was removed" eval "! grep -q 'mapping removed' '$log'"
	lab_check "(e) the external address stayed the carrier's: no Epoch reset ($(gw_epoch) >= $epoch)" \
		eval "[ \"\$(gw_epoch)\" -ge '$epoch' ] && ! grep -q 'external address changed' '$log'"

	lab_say "(e) the same lease again: $new_ip deleted and added back at once"
	recreate0=$(recreations)
	lab_gw_wan_readdress "$new_ip" || { echo "FAIL - cannot re-add the WAN address"; exit 1; }
	# past the watcher's debounce (2 s) and the 0-5 s jitter a re-creation would wait
	sleep 8
	lab_check "(e) ... is no change: none logged, nothing re-created" \
		eval "[ \"\$(wan_changes)\" = 1 ] && [ \"\$(recreations)\" = $recreate0 ]"
	lab_check "(e) ... the mappings stay as they are" [ "$(gw_list)" = "$(cat "$LAB_TMP/made")" ]
	lab_check "(e) ... and so do the carrier's and the gateway's rules" \
		eval "[ \"\$(lab_carrier_mappings)\" = \"\$(gw_carrier_expect)\" ] && [ \"\$(nft_elements)\" = $NTOTAL ]"
	traffic "(e)-same-lease"
	;;
esac

lab_kill "$daemon_pid"
# a sanitizer build reports at exit (leaks) or on the spot; nothing else reads the logs
lab_check "no sanitizer report in the daemon's logs" \
	eval "! grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' '$LAB_TMP'/pcp-iwfd-*.log"
if [ "$LAB_FAILS" -ne 0 ]; then
	for f in "$LAB_TMP"/pcp-iwfd-*.log; do
		echo "--- $f (last 150 lines)"
		tail -n 150 "$f"
	done
	echo "--- the carrier's DNAT rules ($(carrier_rule_count))"
	lab_carrier_mappings | head -n 20
	[ -s "$LAB_TMP/miniupnpd.log" ] && { echo "--- miniupnpd.log"; tail -n 80 "$LAB_TMP/miniupnpd.log"; }
	echo "FAIL - $LAB_FAILS check(s) failed ($scenario)"
	exit 1
fi
echo "PASS - faults ($scenario)"
exit 0
