#!/bin/bash
# natpmp_e2e.sh BUILD_DIR - NAT-PMP from the LAN behind double NAT, with the real natpmpc
# (natpmp-utils) and a libnatpmp client (tests/tools/natpmp_probe.c):
#
#   lan (natpmpc) --NAT-PMP--> pcp-iwfd on gw --PCP MAP--> miniupnpd on cgn --- inet
#   lan2 (a second LAN host, 192.0.2.11)
#
# Checks (spec/iwf.md §1, §2): natpmpc -g shows the carrier's address; the address
# announcement reaches the LAN (224.0.0.1:5350, from the gateway); natpmpc -a for UDP and
# TCP makes a port through which a datagram / a connection from the internet host reaches
# the LAN host; the gateway's list shows it (origin natpmp, the carrier's port); lifetime 0
# deletes it on the gateway and at the carrier; retransmitted requests make one upstream
# mapping; a second LAN host asking for the same port gets its own; "delete all" (internal
# port 0, lifetime 0) removes the host's mappings of one protocol; malformed datagrams do
# not hurt; with the carrier gone a map request gets NETWORK_FAILURE (3).
# Exit: 0 pass, 1 fail, 77 skip.

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"

build="${1:-}"
daemon="$build/pcp-iwfd"
ctl="$build/pcp-iwfctl"
probe="$build/tests/natpmp_probe"
if [ -z "$build" ] || [ ! -x "$daemon" ] || [ ! -x "$ctl" ]; then
	echo "SKIP: no pcp-iwfd / pcp-iwfctl in build directory '${build}'" >&2
	exit 77
fi
if [ ! -x "$probe" ]; then
	echo "SKIP: no natpmp_probe (libnatpmp-dev missing at build time)" >&2
	exit 77
fi
lab_skip_unless_ready natpmpc
lab_hard_timeout 280 "$0" "$@"

gw=$LAB_GW_LAN_IP
ext=$LAB_CGN_EXT_IP

gwctl() { lab_exec gw "$ctl" -s "$LAB_TMP/ctl.sock" "$@"; }
# the gateway's mapping for PROTO INTPORT [HOST] as "address port origin internal_address"
gw_entry() {
	gwctl list --json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    if (m["protocol"] == sys.argv[1] and m["internal_port"] == int(sys.argv[2]) and
            m["internal_address"] == sys.argv[3]):
        print(m["external_address"], m["external_port"], m["origin"], m["internal_address"])' \
		"$1" "$2" "${3:-$LAB_LAN_HOST_IP}"
}
gw_count() { gwctl list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
carrier_rules() { lab_exec cgn nft list ruleset | grep -c 'dnat ip to'; }
carrier_has_port() { lab_exec cgn nft list ruleset | grep 'dnat ip to' | grep -q "dport $1 "; }

# natpmpc from NS (lan|lan2); its output to $LAB_TMP/NAME.out
natpmpc_run() {
	local ns=$1 name=$2
	shift 2
	lab_exec "$ns" timeout 20 natpmpc -g "$gw" "$@" >"$LAB_TMP/$name.out" 2>&1
	echo $? >"$LAB_TMP/$name.rc"
	sed "s/^/  [$name] /" "$LAB_TMP/$name.out" | grep -v '^  \[.*\] *$' | tail -4
}
# "Mapped public port X protocol P to local port Y liftime Z" (natpmpc's spelling)
mapped_port() { sed -n 's/.*Mapped public port \([0-9]*\) .*/\1/p' "$LAB_TMP/$1.out" | tail -1; }
# the libnatpmp probe: one key=value line
probe_run() {
	local ns=$1 name=$2
	shift 2
	lab_exec "$ns" timeout 30 "$probe" -g "$gw" -w 20 "$@" >"$LAB_TMP/$name.out" 2>&1
	echo $? >"$LAB_TMP/$name.rc"
	printf '  [%s] %s\n' "$name" "$(tr '\n' ' ' <"$LAB_TMP/$name.out")"
}
kv() { tr ' ' '\n' <"$LAB_TMP/$1.out" | sed -n "s/^$2=//p" | head -1; }
rc_is() { [ "$(cat "$LAB_TMP/$1.rc")" = "$2" ]; }

# reach NS PROTO EXTPORT INTPORT: a line from the internet host to the carrier's address
# and EXTPORT arrives at a listener on the LAN host NS's INTPORT
reach() { lab_reach inet "$2" "$ext" "$3" "$1" "$4"; }
unreachable() { lab_unreachable inet "$2" "$ext" "$3" "$1" "$4"; }

lab_up || exit 1
lab_add_lan_host || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }

# RFC 6886 §3.2.1: announcements go to 224.0.0.1:5350; listen on the LAN host first
cat >"$LAB_TMP/announce_listener.py" <<-'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("224.0.0.1", 5350))
while True:
    data, peer = s.recvfrom(2048)
    print(peer[0], data.hex(), flush=True)
PY
lab_bg lan "$LAB_TMP/announce.log" python3 -u "$LAB_TMP/announce_listener.py"
lab_wait_for "lab_port_bound lan udp 5350" 5

conf="$LAB_TMP/pcp-iwfd.conf"
cat >"$conf" <<-EOF
lan_interface = $LAB_GW_LAN_IF
lan_interface = $LAB_GW_LAN2_IF
wan_interface = $LAB_GW_WAN_IF
upstream_server = $LAB_CGN_IP
upnp = no
natpmp = yes
pcp = yes
state_file = $LAB_TMP/state
control_socket = $LAB_TMP/ctl.sock
EOF
lab_say "pcp-iwfd on the gateway with NAT-PMP"
sed 's/^/    /' "$conf"
lab_bg gw "$LAB_TMP/pcp-iwfd.log" "$daemon" -f -vv -c "$conf"
daemon_pid=$LAB_LAST_PID
lab_wait_for "[ -S '$LAB_TMP/ctl.sock' ]" 10 || { cat "$LAB_TMP/pcp-iwfd.log"; echo "FAIL - daemon did not start"; exit 1; }

lab_say "natpmpc -g: the external address is the carrier's"
natpmpc_run lan getaddr
lab_check "natpmpc -g exits 0" rc_is getaddr 0
lab_check "natpmpc -g shows the carrier's address $ext" \
	grep -q "Public IP address : $ext" "$LAB_TMP/getaddr.out"
probe_run lan addr addr
lab_check "libnatpmp: result 0 and the carrier's address" \
	[ "$(kv addr result)" = 0 ] && [ "$(kv addr address)" = "$ext" ]
epoch1=$(kv addr epoch)
lab_check "the epoch is the gateway's own (seconds since it started)" [ "${epoch1:-999}" -lt 60 ]
lab_check "the address announcement reached the LAN host from $gw" \
	lab_wait_for "grep -q '^$gw 008000000000....cb007101' '$LAB_TMP/announce.log'" 5
echo "  announcements seen: $(grep -c . "$LAB_TMP/announce.log")"

for proto in udp tcp; do
	port=$([ $proto = udp ] && echo 7001 || echo 7000)
	lab_say "$proto: natpmpc -a $port $port $proto 600 from the LAN host"
	natpmpc_run lan add_$proto -a "$port" "$port" "$proto" 600
	lab_check "$proto: natpmpc -a exits 0" rc_is add_$proto 0
	extport=$(mapped_port add_$proto)
	lab_check "$proto: a public port was mapped" [ -n "$extport" ]
	entry=$(gw_entry $proto $port)
	echo "  gateway list: $entry"
	lab_check "$proto: the gateway lists it: carrier's address and port, origin natpmp" \
		[ "$entry" = "$ext $extport natpmp $LAB_LAN_HOST_IP" ]
	lab_check "$proto: the carrier has the mapping" carrier_has_port "$extport"
	lab_check "$proto: traffic from the internet reaches the LAN host" \
		reach lan $proto "$extport" "$port"

	lab_say "$proto: lifetime 0 deletes it"
	natpmpc_run lan del_$proto -a "$extport" "$port" "$proto" 0
	lab_check "$proto: the delete exits 0" rc_is del_$proto 0
	lab_check "$proto: gone from the gateway" [ -z "$(gw_entry $proto $port)" ]
	lab_wait_for "! carrier_has_port $extport" 5
	lab_check "$proto: gone at the carrier" eval "! carrier_has_port $extport"
	lab_check "$proto: traffic no longer arrives" \
		unreachable lan $proto "$extport" "$port"
done

lab_say "retransmissions of one request make one upstream mapping"
cat >"$LAB_TMP/retrans.py" <<-'PY'
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], 5351))
req = struct.pack("!BBHHHI", 0, 1, 0, 7300, 7300, 600)
for gap in (0, 0.01, 0.02, 0.04):
    time.sleep(gap)
    s.send(req)
# copies that arrive while the first waits for the carrier join it and share its one
# answer (iwf/natpmp.c); copies after the answer are answered from the table: one to
# four replies, by timing, all naming the same port
s.settimeout(8)
ports = []
while len(ports) < 4:
    try:
        data = s.recv(64)
    except socket.timeout:
        break
    ver, op, res, epoch, iport, eport, life = struct.unpack("!BBHIHHI", data[:16])
    assert (ver, op, res, iport, len(data)) == (0, 129, 0, 7300, 16), data.hex()
    ports.append(eport)
    s.settimeout(2)
print(" ".join(map(str, ports)))
PY
lab_exec lan timeout 15 python3 "$LAB_TMP/retrans.py" "$gw" >"$LAB_TMP/retrans.out" 2>&1
echo "  replies: $(cat "$LAB_TMP/retrans.out")"
lab_check "one to four replies, all with the same port" \
	python3 -c 'import sys; p=open(sys.argv[1]).read().split(); assert 1<=len(p)<=4 and len(set(p))==1' \
	"$LAB_TMP/retrans.out"
rport=$(awk '{print $1}' "$LAB_TMP/retrans.out")
lab_check "exactly one carrier rule for it" \
	[ "$(lab_exec cgn nft list ruleset | grep 'dnat ip to' | grep -c "dport $rport ")" = 1 ]

lab_say "a second LAN host asks for the same external port"
natpmpc_run lan h1 -a 9000 9000 tcp 600
natpmpc_run lan2 h2 -a 9000 9000 tcp 600
p1=$(mapped_port h1)
p2=$(mapped_port h2)
echo "  first host: $p1, second host: $p2"
lab_check "both got a port" [ -n "$p1" ] && [ -n "$p2" ]
lab_check "the second host did not take the first host's port" [ "$p1" != "$p2" ]
lab_check "the first host's port still reaches the first host" \
	reach lan tcp "$p1" 9000
lab_check "the second host's port reaches the second host" \
	reach lan2 tcp "$p2" 9000
lab_check "the gateway lists the second host's own mapping" \
	[ "$(gw_entry tcp 9000 "$LAB_LAN2_HOST_IP" | awk '{print $3}')" = natpmp ]

lab_say "delete all: internal port 0, lifetime 0 (RFC 6886 §3.4)"
probe_run lan u1 map udp 7101 7101 600
probe_run lan u2 map udp 7102 7102 600
lab_check "two more UDP mappings" [ -n "$(gw_entry udp 7101)" ] && [ -n "$(gw_entry udp 7102)" ]
before=$(carrier_rules)
natpmpc_run lan delall -a 0 0 udp 0
lab_check "delete all exits 0" rc_is delall 0
lab_check "the host's NAT-PMP UDP mappings are gone" \
	[ -z "$(gw_entry udp 7101)" ] && [ -z "$(gw_entry udp 7102)" ] && [ -z "$(gw_entry udp 7300)" ]
lab_check "its TCP mapping stays" [ -n "$(gw_entry tcp 9000)" ]
lab_check "the second host's mapping stays" [ -n "$(gw_entry tcp 9000 "$LAB_LAN2_HOST_IP")" ]
lab_wait_for "[ \$(carrier_rules) -le $((before - 3)) ]" 5
lab_check "the carrier dropped them too ($before -> $(carrier_rules))" \
	[ "$(carrier_rules)" -le $((before - 3)) ]

lab_say "malformed datagrams: dropped or answered, never a crash"
cat >"$LAB_TMP/garbage.py" <<-'PY'
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], 5351))
s.settimeout(1)
for pkt in (b"\x00", b"\x00\x01\x00\x00\x1b\x58", b"\x00\x80" + bytes(10), b"\x00\x02" + bytes(9),
            b"\x00\x09abcdefghijklmn", b"\x00" + os.urandom(3000)):
    s.send(pkt)
try:
    while True:
        data = s.recv(4096)
        print(data[:4].hex(), len(data))
except socket.timeout:
    pass
PY
lab_exec lan timeout 10 python3 "$LAB_TMP/garbage.py" "$gw" >"$LAB_TMP/garbage.out" 2>&1
sed 's/^/  reply: /' "$LAB_TMP/garbage.out"
lab_check "unknown opcode 9 answered with result 5, the request echoed (RFC 6886 §3.5)" \
	grep -q '^00890005 16$' "$LAB_TMP/garbage.out"
lab_check "the daemon is still running" lab_alive "$daemon_pid"
lab_check "no half-made mapping (every entry of the list is complete)" \
	python3 -c 'import json,sys; l=json.loads(sys.argv[1]); assert all(m["external_port"] and m["lifetime"] > 0 for m in l), l' \
	"$(gwctl list --json)"
probe_run lan addr2 addr
epoch2=$(kv addr2 epoch)
lab_check "the epoch counts on (${epoch1} -> ${epoch2})" [ "${epoch2:-0}" -ge "${epoch1:-999}" ]

lab_say "the carrier goes away: NETWORK_FAILURE (3) for a new mapping"
lab_stop_carrier
probe_run lan down map tcp 7400 7400 600
lab_check "result 3 after the proxy's wait" [ "$(kv down result)" = 3 ]
lab_check "no mapping left behind for it" [ -z "$(gw_entry tcp 7400)" ]
natpmpc_run lan getaddr2
lab_check "natpmpc -g still shows the last learned address (docs/natpmp.md)" \
	grep -q "Public IP address : $ext" "$LAB_TMP/getaddr2.out"

lab_kill "$daemon_pid"
lab_check "daemon left no control socket" [ ! -e "$LAB_TMP/ctl.sock" ]

if [ "$LAB_FAILS" -ne 0 ]; then
	echo "--- daemon log"; cat "$LAB_TMP/pcp-iwfd.log"
	echo "FAIL - $LAB_FAILS check(s) failed"
	exit 1
fi
echo "PASS - natpmp_e2e"
exit 0
