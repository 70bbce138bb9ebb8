#!/bin/bash
# proxy_relay.sh BUILD_DIR - RFC 7648 §3.4.2 relaying of unknown opcodes with a real carrier:
# LAN host --PCP opcode 100--> pcp-iwfd on the gateway --relayed--> miniupnpd on the carrier.
#
# miniupnpd answers an opcode it does not know with UNSUPP_OPCODE, lifetime 0 and zero
# reserved bits; pcp-iwfd's own UNSUPP_OPCODE (relaying off) has lifetime 1800 and the
# Client IP's last 96 bits in the reserved field (RFC 6887 §7.2, §7.4). So:
#   relay_unknown = yes (default): a relayed opcode-100 request from the LAN host comes back
#     as miniupnpd's UNSUPP_OPCODE with OUR epoch (P-11: the gateway's, bracketed by two
#     ANNOUNCEs to the gateway, not the carrier's) and the request's body unchanged;
#     ANNOUNCE is answered by the gateway itself (P-19); AUTHENTICATION (opcode 3) gets the
#     gateway's own UNSUPP_OPCODE;
#   relay_unknown = no: the gateway's own UNSUPP_OPCODE (P-17, P-18).
# The Client IP rewrite cannot be seen here (miniupnpd does not check the field for opcodes
# it does not know); tests/unit/test_pcp_relay.c checks it.
# Exit: 0 pass, 1 fail, 77 skip (also when the daemon does not wire the relay yet).

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"

build="${1:-}"
daemon="$build/pcp-iwfd"
if [ -z "$build" ] || [ ! -x "$daemon" ]; then
	echo "SKIP: no pcp-iwfd in build directory '${build}'" >&2
	exit 77
fi
lab_skip_unless_ready
lab_hard_timeout 180 "$0" "$@"

# pcp OP NAME: one PCP request with opcode OP from the LAN host to the gateway (Client IP =
# the LAN host, an 8-octet body for opcodes other than ANNOUNCE); the reply as JSON in
# NAME.json ({} when none came in 4 s).
pcp() {
	local op="$1" name="$2"
	lab_exec lan python3 - "$LAB_GW_LAN_IP" "$LAB_LAN_HOST_IP" "$op" \
		>"$LAB_TMP/$name.json" 2>"$LAB_TMP/$name.err" <<'EOF'
import json, socket, struct, sys
server, me, op = sys.argv[1], sys.argv[2], int(sys.argv[3])
body = b"" if op == 0 else bytes(range(0xa0, 0xa8))
client_ip = b"\0" * 10 + b"\xff\xff" + socket.inet_aton(me)
req = struct.pack("!BBHI", 2, op, 0, 600) + client_ip + body
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((me, 0))
s.settimeout(4)
s.sendto(req, (server, 5351))
try:
    rep, src = s.recvfrom(2048)
except socket.timeout:
    print("{}")
    sys.exit(0)
ver, rop, _, result, lifetime, epoch = struct.unpack("!BBBBII", rep[:12])
print(json.dumps({"from": "%s:%d" % src, "len": len(rep), "version": ver,
    "r": rop >> 7, "opcode": rop & 0x7f, "result": result, "lifetime": lifetime,
    "epoch": epoch, "reserved": rep[12:24].hex(), "body_same": rep[24:] == body,
    "client_tail": client_ip[4:].hex()}))
EOF
	printf '  [%s] %s\n' "$name" "$(tr -d '\n' <"$LAB_TMP/$name.json")"
	[ -s "$LAB_TMP/$name.err" ] && sed 's/^/  stderr: /' "$LAB_TMP/$name.err"
	return 0
}
# jis NAME KEY VALUE: NAME.json's KEY is VALUE
jis() {
	python3 -c 'import json, sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
sys.exit(0 if str(v) == sys.argv[3] else 1)' "$LAB_TMP/$1.json" "$2" "$3"
}
jget() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$LAB_TMP/$1.json" "$2"; }
# the carrier's own epoch, asked from the gateway (an ANNOUNCE straight to miniupnpd)
carrier_epoch() {
	lab_exec gw python3 - "$LAB_CGN_IP" "$LAB_GW_WAN_IP" <<'EOF'
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[2], 0))
s.settimeout(4)
s.sendto(struct.pack("!BBHI", 2, 0, 0, 0) + b"\0" * 10 + b"\xff\xff" +
         socket.inet_aton(sys.argv[2]), (sys.argv[1], 5351))
print(struct.unpack("!I", s.recvfrom(2048)[0][8:12])[0])
EOF
}

# start_daemon RELAY: pcp-iwfd with relay_unknown = RELAY
start_daemon() {
	local conf="$LAB_TMP/pcp-iwfd.conf"
	{
		echo "lan_interface = $LAB_GW_LAN_IF"
		echo "wan_interface = $LAB_GW_WAN_IF"
		echo "upstream_server = $LAB_CGN_IP"
		echo "relay_unknown = $1"
		echo "upnp = no"
		echo "natpmp = no"
		echo "state_file = $LAB_TMP/state"
		echo "control_socket = $LAB_TMP/ctl.sock"
	} >"$conf"
	lab_say "pcp-iwfd on the gateway, relay_unknown = $1"
	sed 's/^/    /' "$conf"
	rm -f "$LAB_TMP/ctl.sock"
	lab_bg gw "$LAB_TMP/pcp-iwfd-$1.log" "$daemon" -f -v -c "$conf"
	daemon_pid=$LAB_LAST_PID
	lab_wait_for "[ -S '$LAB_TMP/ctl.sock' ]" 10 || {
		cat "$LAB_TMP/pcp-iwfd-$1.log"
		echo "FAIL - daemon did not start"
		exit 1
	}
}

lab_up || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }
# both epochs count seconds from their start: give the carrier's a lead that cannot be
# mistaken for ours
sleep 3

start_daemon yes
# pcp_frontend.c logs this when it opens its relay; a daemon that does not pass
# relay_unknown and the upstream server to the front-end (src/iwfd.c) never relays.
if ! lab_wait_for "grep -q 'relaying unknown opcodes' '$LAB_TMP/pcp-iwfd-yes.log'" 3; then
	sed 's/^/    /' "$LAB_TMP/pcp-iwfd-yes.log"
	echo "SKIP: pcp-iwfd does not wire relay_unknown into the PCP front-end yet" \
		"(src/iwfd.c iwfd_open_frontends: relay_unknown / relay_server / wan_interface)" >&2
	exit 77
fi

lab_say "the LAN host sends opcode 100, bracketed by two ANNOUNCEs to the gateway"
pcp 0 announce1
pcp 100 relayed
pcp 0 announce2
cepoch=$(carrier_epoch)
echo "  carrier epoch: $cepoch"
e1=$(jget announce1 epoch)
e2=$(jget announce2 epoch)
er=$(jget relayed epoch)
lab_check "ANNOUNCE answered by the gateway (P-19), SUCCESS" jis announce1 result 0
lab_check "opcode 100 answered, from the address asked" jis relayed from "$LAB_GW_LAN_IP:5351"
lab_check "the answer is a response to opcode 100" \
	eval 'jis relayed r 1 && jis relayed opcode 100'
lab_check "it is miniupnpd's UNSUPP_OPCODE (lifetime 0, zero reserved bits)" \
	eval 'jis relayed result 4 && jis relayed lifetime 0 && jis relayed reserved 000000000000000000000000'
lab_check "the request's body came back unchanged" jis relayed body_same True
lab_check "with our epoch ($e1 <= $er <= $e2), not the carrier's" \
	eval '[ -n "$er" ] && [ "$e1" -le "$er" ] && [ "$er" -le "$e2" ]'
lab_check "the carrier's epoch ($cepoch) is not ours (else the check above proves nothing)" \
	eval '[ -n "$cepoch" ] && [ "$cepoch" -gt "$e2" ]'

pcp 3 auth
lab_check "AUTHENTICATION (opcode 3) is not relayed: the gateway's UNSUPP_OPCODE" \
	eval 'jis auth result 4 && jis auth lifetime 1800'

lab_kill "$daemon_pid"
start_daemon no
pcp 100 local
lab_check "relay_unknown = no: the gateway's own UNSUPP_OPCODE (P-18)" \
	eval 'jis local result 4 && jis local lifetime 1800'
lab_check "  ... the reserved bits carry the Client IP's tail (RFC 6887 §7.2)" \
	jis local reserved "$(jget local client_tail)"
lab_kill "$daemon_pid"

if [ "$LAB_FAILS" -ne 0 ]; then
	for f in "$LAB_TMP"/pcp-iwfd-*.log; do echo "--- $f"; cat "$f"; done
	echo "FAIL - $LAB_FAILS check(s) failed"
	exit 1
fi
echo "PASS - proxy_relay"
exit 0
