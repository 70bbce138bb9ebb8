#!/bin/bash
# restart.sh BUILD_DIR - a durable restart (DESIGN.md "State and durability", docs/state.md)
# with real kernels and a real carrier: nat = local + upstream (miniupnpd on the carrier).
#
# The LAN host makes 20 mappings through the gateway with pcp-iwfctl (10 TCP, 10 UDP);
# traffic from the internet reaches it on two of them. Then the daemon is
#   (a) stopped with SIGTERM and started again,
#   (b) killed with SIGKILL (only the last group commit survives) and started again.
# After each, within 15 s: every mapping is back in `pcp-iwfctl list --json` with the same
# external address and port; the carrier still holds its 20 rules; the gateway's nft map
# holds exactly 20 elements (nothing duplicated, nothing lost); real TCP from the internet
# arrives through one of them; the Epoch kept counting (RFC 6887 §8.5: status --json epoch
# >= the value before the restart); the daemon refreshed the upstream mappings with their
# stored nonces (its log); and a refresh from the LAN host with the SAME nonce is answered
# SUCCESS with the same external port (not NOT_AUTHORIZED: the nonce survived).
#   (c) a burst of PCP MAP requests, and SIGKILL from the client itself the moment the
#       BURST_KILL_AFTER-th SUCCESS arrives, with the rest of the burst still in flight: every
#       mapping a SUCCESS was received for is back after the restart (a SUCCESS goes out only
#       once its journal group is synced: docs/state.md "Replies wait for the commit").
# Last, a truncated state file: the daemon logs file:line, moves it aside to
# <state_file>.corrupt-<time> and starts with no mappings, an empty nft map and a fresh
# Epoch.
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
lab_hard_timeout 280 "$0" "$@"

NMAP=10		# per protocol
BASE_PORT=7100
BURST=40	# (c): requests sent at once
BURST_KILL_AFTER=12
BURST_PORT=7300

jget() {
	python3 -c 'import json, sys
obj = json.load(open(sys.argv[1]))
v = obj.get(sys.argv[2])
print("" if v is None else v)' "$1" "$2" 2>/dev/null
}

# lanctl NAME ARGS...: pcp-iwfctl from the LAN host toward the gateway, JSON to NAME.json
lanctl() {
	local name="$1"
	shift
	lab_exec lan timeout 30 "$ctl" "$@" -S "$LAB_GW_LAN_IP" -w 8 --json \
		>"$LAB_TMP/$name.json" 2>"$LAB_TMP/$name.err"
	echo "$?" >"$LAB_TMP/$name.rc"
}
rc_is() { [ "$(cat "$LAB_TMP/$1.rc")" = "$2" ]; }
gwctl() { lab_exec gw "$ctl" -s "$LAB_TMP/ctl.sock" "$@"; }
gw_epoch() { gwctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])'; }
# the gateway's mappings, one "proto intport extaddr extport" a line, sorted
gw_list() {
	gwctl list --json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    print(m["protocol"], m["internal_port"], m["external_address"], m["external_port"])' |
		sort
}
nft_elements() {
	lab_exec gw nft -j list map ip pcp_iwfd dnat_ports 2>/dev/null | python3 -c '
import json, sys
for o in json.load(sys.stdin)["nftables"]:
    if "map" in o:
        print(len(o["map"].get("elem", [])))'
}
carrier_rules() { lab_exec cgn nft list ruleset | grep -c 'dnat ip to'; }

# reach PROTO ADDR PORT: the internet host -> ADDR:PORT -> the LAN host's PORT
reach() { lab_reach inet "$1" "$2" "$3" lan "$3"; }

lab_up || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }

conf="$LAB_TMP/pcp-iwfd.conf"
state="$LAB_TMP/state"
{
	echo "lan_interface = $LAB_GW_LAN_IF"
	echo "wan_interface = $LAB_GW_WAN_IF"
	echo "upstream_server = $LAB_CGN_IP"
	echo "upnp = no"
	echo "natpmp = no"
	echo "state_file = $state"
	echo "control_socket = $LAB_TMP/ctl.sock"
} >"$conf"
sed 's/^/    /' "$conf"

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

start_daemon first
lab_say "the LAN host makes $((2 * NMAP)) mappings"
: >"$LAB_TMP/made"
for proto in tcp udp; do
	for i in $(seq 0 $((NMAP - 1))); do
		port=$((BASE_PORT + i))
		lanctl "map_${proto}_$port" map -p $proto -i $port -l 600
		if ! rc_is "map_${proto}_$port" 0; then
			echo "  map $proto $port failed: $(cat "$LAB_TMP/map_${proto}_$port.json")"
			continue
		fi
		echo "$proto $port $(jget "$LAB_TMP/map_${proto}_$port.json" external_address)" \
			"$(jget "$LAB_TMP/map_${proto}_$port.json" external_port)" >>"$LAB_TMP/made"
	done
done
sort -o "$LAB_TMP/made" "$LAB_TMP/made"
lab_check "$((2 * NMAP)) mappings answered SUCCESS" [ "$(wc -l <"$LAB_TMP/made")" = $((2 * NMAP)) ]
lab_check "they are the gateway's list" [ "$(gw_list)" = "$(cat "$LAB_TMP/made")" ]
lab_check "the carrier holds $((2 * NMAP)) rules" [ "$(carrier_rules)" = $((2 * NMAP)) ]
lab_check "the gateway's nft map holds $((2 * NMAP)) elements" [ "$(nft_elements)" = $((2 * NMAP)) ]
read -r _ _ taddr tport < <(grep "^tcp $BASE_PORT " "$LAB_TMP/made")
read -r _ _ uaddr uport < <(grep "^udp $((BASE_PORT + 1)) " "$LAB_TMP/made")
lab_check "TCP from the internet reaches the LAN host ($taddr:$tport)" \
	reach tcp "$taddr" "$tport"
lab_check "UDP from the internet reaches the LAN host ($uaddr:$uport)" \
	reach udp "$uaddr" "$uport"
lab_check "the state file was written (group commit)" [ -s "$state" ]

# after_restart WHAT: every check a restart must pass
after_restart() {
	local what=$1 epoch_before=$2 nonce port
	lab_check "$what: every mapping is back with the same external address and port" \
		lab_wait_for "[ \"\$(gw_list)\" = \"\$(cat '$LAB_TMP/made')\" ]" 15
	lab_check "$what: the Epoch kept counting ($(gw_epoch) >= $epoch_before)" \
		[ "$(gw_epoch)" -ge "$epoch_before" ]
	lab_check "$what: the gateway's nft map holds exactly $((2 * NMAP)) elements" \
		lab_wait_for "[ \"\$(nft_elements)\" = $((2 * NMAP)) ]" 15
	lab_check "$what: the upstream mappings are refreshed with their stored nonces" \
		lab_wait_for "grep -q 're-creating $((2 * NMAP)) mapping' '$log'" 15
	lab_check "$what: the carrier holds its $((2 * NMAP)) rules" \
		lab_wait_for "[ \"\$(carrier_rules)\" = $((2 * NMAP)) ]" 15
	lab_check "$what: ... and the list still has the same external ports" \
		lab_wait_for "[ \"\$(gw_list)\" = \"\$(cat '$LAB_TMP/made')\" ]" 5
	lab_check "$what: TCP from the internet reaches the LAN host" \
		reach tcp "$taddr" "$tport"
	for proto in tcp udp; do
		port=$((BASE_PORT + 2))
		nonce=$(jget "$LAB_TMP/map_${proto}_$port.json" nonce)
		lanctl "refresh_${what}_$proto" map -p $proto -i $port -l 600 -N "$nonce"
		lab_check "$what: a $proto refresh with the same nonce: SUCCESS, the same port" \
			eval "rc_is refresh_${what}_$proto 0 && [ \"\$(jget '$LAB_TMP/refresh_${what}_$proto.json' external_port)\" = \"\$(jget '$LAB_TMP/map_${proto}_$port.json' external_port)\" ]"
	done
	lab_check "$what: all $((2 * NMAP)) restored, none dropped" \
		grep -q "$((2 * NMAP)) mapping(s) restored, 0 expired while down, 0 failed" "$log"
}

# (a) SIGTERM keeps the mappings (their rules and upstream lifetimes carry them)
sleep 2
epoch=$(gw_epoch)
lab_say "(a) SIGTERM at epoch $epoch, then a restart"
lab_kill "$daemon_pid"
lab_check "(a) SIGTERM: the state was saved" grep -q "state saved to" "$LAB_TMP/pcp-iwfd-first.log"
lab_check "(a) SIGTERM: the nft rules stay while the daemon is down" \
	[ "$(nft_elements)" = $((2 * NMAP)) ]
start_daemon sigterm
lab_check "(a) the daemon resumed the Epoch" grep -q "epoch resumed" "$log"
after_restart sigterm "$epoch"

# (b) SIGKILL: the last group commit is all there is
sleep 2
epoch=$(gw_epoch)
lab_say "(b) SIGKILL at epoch $epoch, then a restart"
kill -KILL "$daemon_pid"
lab_kill "$daemon_pid"
start_daemon sigkill
# The file holds whole seconds as of the last group commit, so the resumed Epoch may be one
# second behind what a client saw last: RFC 6887 §8.5 allows exactly that (a client sees lost
# state only when the Epoch went back by more than one second).
after_restart sigkill "$((epoch - 1))"

# (c) SIGKILL right after SUCCESS replies, mid-burst
cat >"$LAB_TMP/burst.py" <<'PY'
import os, signal, socket, struct, sys, time
gw, n, kill_after, base, pid, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((gw, 5351))
me = socket.inet_aton(s.getsockname()[0])
mapped = b"\0" * 10 + b"\xff\xff"
asked = {}
for i in range(n):
    nonce = os.urandom(12)
    proto = 6 if i % 2 == 0 else 17
    asked[nonce] = (proto, base + i)
    # RFC 6887 §7.1 header, §11.1 MAP body
    s.send(struct.pack("!BBHI", 2, 1, 0, 600) + mapped + me + nonce +
           struct.pack("!B3xHH", proto, base + i, 0) + mapped + b"\0" * 4)
got, killed = [], False
s.settimeout(0.2)
end = time.time() + 15
while time.time() < end and len(got) < n:
    try:
        r = s.recv(1100)
    except socket.timeout:
        continue
    if len(r) < 60 or r[1] != 0x81 or r[3] != 0 or r[24:36] not in asked:
        continue
    proto, port = asked.pop(r[24:36])
    got.append("%s %d %s %d" % ("tcp" if proto == 6 else "udp", port,
               socket.inet_ntoa(r[56:60]), struct.unpack("!H", r[42:44])[0]))
    if len(got) == kill_after and not killed:
        os.kill(pid, signal.SIGKILL)
        killed = True
        end = time.time() + 0.5	# what was on its way already
open(out, "w").write("".join(l + "\n" for l in sorted(got)))
print("burst: %d SUCCESS, killed=%s" % (len(got), killed))
PY
sleep 2
lab_say "(c) a burst of $BURST MAP requests, SIGKILL after $BURST_KILL_AFTER SUCCESS replies"
lab_exec lan python3 "$LAB_TMP/burst.py" "$LAB_GW_LAN_IP" "$BURST" "$BURST_KILL_AFTER" \
	"$BURST_PORT" "$daemon_pid" "$LAB_TMP/burst_ok" >"$LAB_TMP/burst.out" 2>&1
cat "$LAB_TMP/burst.out"
lab_check "(c) the daemon was killed mid-burst" grep -q "killed=True" "$LAB_TMP/burst.out"
lab_check "(c) at least $BURST_KILL_AFTER SUCCESS replies came" \
	[ "$(wc -l <"$LAB_TMP/burst_ok")" -ge "$BURST_KILL_AFTER" ]
lab_kill "$daemon_pid"
lab_check "(c) the changes went to the journal, a group per turn" \
	grep -q "^group [0-9]*$" "$state.journal"
start_daemon burst
burst_back() {
	local have
	have=$(gw_list)
	while read -r line; do
		grep -qx "$line" <<<"$have" || return 1
	done <"$LAB_TMP/burst_ok"
}
lab_check "(c) every mapping answered SUCCESS is back, with its external port" \
	lab_wait_for burst_back 15
if ! burst_back; then
	echo "  answered SUCCESS:"; sed 's/^/    /' "$LAB_TMP/burst_ok"
	echo "  the gateway's list:"; gw_list | sed 's/^/    /'
fi
lab_check "(c) ... and the $((2 * NMAP)) of before" \
	eval "[ \"\$(gw_list | awk '\$2 >= $BASE_PORT && \$2 < $((BASE_PORT + NMAP))' | wc -l)\" = $((2 * NMAP)) ]"

# a corrupt state file: reported, moved aside, a fresh start
sleep 2
epoch=$(gw_epoch)
lab_say "a truncated state file (epoch was $epoch)"
kill -KILL "$daemon_pid"
lab_kill "$daemon_pid"
truncate -s 150 "$state"
start_daemon corrupt
lab_check "corrupt: the daemon logs file:line" grep -q "$state:[0-9]*: " "$log"
lab_check "corrupt: ... and where it moved the file" grep -q "corrupt, moved to $state.corrupt-" "$log"
lab_check "corrupt: the file is moved aside" eval "ls '$state'.corrupt-* >/dev/null 2>&1"
lab_check "corrupt: no mappings" [ -z "$(gw_list)" ]
lab_check "corrupt: a fresh Epoch ($(gw_epoch) < $epoch)" [ "$(gw_epoch)" -lt "$epoch" ]
lab_check "corrupt: the nft map is emptied" [ "$(nft_elements)" = 0 ]
lab_kill "$daemon_pid"

if [ "$LAB_FAILS" -ne 0 ]; then
	for f in "$LAB_TMP"/pcp-iwfd-*.log; do echo "--- $f"; cat "$f"; done
	echo "FAIL - $LAB_FAILS check(s) failed"
	exit 1
fi
echo "PASS - restart"
exit 0
