#!/bin/bash
# wan_guard.sh BUILD_DIR - the guard in the daemon's nftables table (backend.h set_guard;
# spec/iwf.md X-01, X-06; docs/deployment.md "The guard"), with the real daemon (upnp,
# natpmp, pcp) and the real carrier (miniupnpd) in the lab of scripts/lab.sh:
#
#   lan (192.0.2.10) / lan2 (192.0.2.11) --- pcp-iwfd on gw --- cgn (carrier) --- inet
#
# Checks:
#   1. the daemon's table has the input chain with the IGD's two HTTP ports, SSDP and
#      PCP/NAT-PMP, the per-source connection limit and the per-source SSDP rate;
#   2. from the carrier's namespace (the WAN side), to the gateway's WAN address and to
#      its LAN address (routed over the WAN link: Linux's weak host model would accept
#      it): TCP to both IGD ports, a unicast SSDP M-SEARCH, a PCP MAP and a NAT-PMP
#      request get NO answer and create nothing (the mapping table stays empty);
#   3. the same from the LAN still works: SSDP, the description, SOAP on both ports, a
#      PCP MAP and a NAT-PMP mapping, granted by the carrier through the upstream PCP
#      client, whose answers come FROM the carrier's port 5351 (they must pass);
#   4. a LAN host opening 40 idle TCP connections to pupnp's port gets 4 and is refused
#      (TCP reset) beyond them, while another LAN host's SOAP is answered at once and it
#      still fetches the description (within two of pupnp's 30 s read timeouts: pupnp's
#      pool is not ours, see the comment there); once they are closed the first host is
#      served again;
#   5. split horizon: a LAN host using an address outside the LAN prefixes (10.99.0.77,
#      which the gateway routes back over the LAN so that TCP works) gets 606 from
#      pupnp's port and a reset without a byte from the control port, and nothing is made;
#   6. the SSDP rate: a LAN host sending 200 M-SEARCH in a second gets a bounded number
#      of answers (the rest is dropped and counted), another LAN host is answered right
#      after, and so is the first after a second of silence;
#   7. the per-host SOAP rate (rate_limit = 1, rate_burst = 2 by SIGHUP): a host's
#      quick calls beyond its burst get 501 on both ports, another host is served;
#   8. a SIGHUP that changes lan_interface re-applies the guard with the new list;
#   9. the owner rule (X-04): the output chain refuses new TCP connections of the daemon's
#      user off the LAN (a WAN listener refused as that user, reached as root; a LAN
#      listener reached as that user).
# Exit: 0 pass, 1 fail, 77 skip.

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"

build="${1:-}"
daemon="$build/pcp-iwfd"
ctl="$build/pcp-iwfctl"
PY=/usr/bin/python3
client="$here/upnp_soap_client.py"
# BACKEND_GUARD_CONNS_PER_HOST in src/backend.h
limit=4
# NFT_GUARD_SSDP_RATE and NFT_GUARD_SSDP_BURST in src/backend_nft.c
ssdp_rate=10
ssdp_burst=30
# a LAN host's address outside every LAN prefix (step 5)
spoof=10.99.0.77
table=pcp_iwfd
if [ -z "$build" ] || [ ! -x "$daemon" ] || [ ! -x "$ctl" ]; then
	echo "SKIP: no pcp-iwfd / pcp-iwfctl in build directory '${build}'" >&2
	exit 77
fi
lab_skip_unless_ready "$PY" natpmpc
lab_hard_timeout 290 "$0" "$@"

ext=$LAB_CGN_EXT_IP
gw_lan=$LAB_GW_LAN_IP
gw_wan=$LAB_GW_WAN_IP

gwctl() { lab_exec gw "$ctl" -s "$LAB_TMP/ctl.sock" "$@"; }
gw_count() {
	gwctl list --json | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)))'
}
carrier_has_port() { lab_exec cgn nft list ruleset | grep 'dnat ip to' | grep -q "dport $1 "; }
guard_chain() { lab_exec gw nft list chain ip "$table" input; }
# the drop rules' packet counts, summed
guard_drops() {
	guard_chain | sed -n 's/.*counter packets \([0-9]*\) bytes [0-9]* drop$/\1/p' |
		awk '{ s += $1 } END { print s + 0 }'
}
not() { ! "$@"; }
# arithmetic on decimals without bc (not on a fresh machine): EXPR to 3 places, or floored
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
calc_int() { awk "BEGIN { printf \"%d\", $1 }"; }
daemon_alive() { lab_alive "$daemon_pid"; }
# a JSON field of $LAB_TMP/NAME.json (out.ARG for SOAP out arguments)
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

lab_up || exit 1
lab_add_lan_host || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }
# SSDP is multicast: the LAN hosts send it out of their LAN interface
lab_exec lan ip route add 239.0.0.0/8 dev "$LAB_LAN_IF"
lab_exec lan2 ip route add 239.0.0.0/8 dev "$LAB_LAN_IF"

conf="$LAB_TMP/pcp-iwfd.conf"
write_conf() { # LAN_IF...
	{
		for i in "$@"; do echo "lan_interface = $i"; done
		cat <<-EOF
		wan_interface = $LAB_GW_WAN_IF
		upstream_server = $LAB_CGN_IP
		nft_table = $table
		upnp = yes
		natpmp = yes
		pcp = yes
		state_file = $LAB_TMP/state
		control_socket = $LAB_TMP/ctl.sock
		EOF
	} >"$conf"
}
write_conf "$LAB_GW_LAN_IF" "$LAB_GW_LAN2_IF"
lab_say "pcp-iwfd on the gateway: UPnP IGD, NAT-PMP, PCP; nat = local"
sed 's/^/    /' "$conf"
lab_bg gw "$LAB_TMP/pcp-iwfd.log" "$daemon" -f -vv -c "$conf"
daemon_pid=$LAB_LAST_PID
if ! lab_wait_for "grep -q 'upnp: IGD:.*control http' '$LAB_TMP/pcp-iwfd.log'" 15; then
	tail -30 "$LAB_TMP/pcp-iwfd.log"
	echo "FAIL - the daemon did not start its IGD"
	exit 1
fi
igdline=$(grep -m1 'upnp: IGD:.*control http' "$LAB_TMP/pcp-iwfd.log")
desc_port=$(echo "$igdline" | sed -n 's|.*description http://[0-9.]*:\([0-9]*\)/.*|\1|p')
control_port=$(echo "$igdline" | sed -n 's|.*control http://[0-9.]*:\([0-9]*\).*|\1|p')
echo "  $igdline"
[ -n "$desc_port" ] && [ -n "$control_port" ] || { echo "FAIL - no IGD ports in the log"; exit 1; }

lab_say "1. the guard in table ip $table"
# the commit after upnp_open applies it: wait for the TCP ports to be there
lab_wait_for "guard_chain | grep -q 'tcp dport .*$control_port'" 5
guard_chain | sed 's/^/  /'
ports_re="{ ($desc_port, $control_port|$control_port, $desc_port) }"
lab_check "the chain hooks input at priority filter - 1" \
	eval "guard_chain | grep -q 'type filter hook input priority filter - 1; policy accept;'"
lab_check "UDP 1900 (SSDP) and 5351 (PCP, NAT-PMP) dropped unless from lo, lan0, lan1" \
	eval "guard_chain | grep -q 'iifname != { \"lo\", \"lan0\", \"lan1\" } udp dport { 1900, 5351 } counter .* drop'"
lab_check "TCP $desc_port (pupnp) and $control_port (SOAP) dropped unless from the LAN" \
	eval "guard_chain | grep -Eq 'iifname != \\{ \"lo\", \"lan0\", \"lan1\" \\} tcp dport $ports_re ct state new counter .* drop'"
lab_check "new TCP connections to pupnp's $desc_port: at most $limit per source, else a reset" \
	eval "guard_chain | grep -Eq 'tcp dport $desc_port ct state new add @igd_conns \\{ ip saddr . tcp dport ct count over $limit \\} counter .* reject with tcp reset'"
lab_check "UDP 1900 and 5351 from a source not routed back through its interface: dropped (strict rpf)" \
	eval "guard_chain | grep -q 'iifname != \"lo\" udp dport { 1900, 5351 } fib saddr . iif oif missing counter .* drop'"
lab_check "UDP 1900 from the LAN: at most $ssdp_rate/s per source after $ssdp_burst, else dropped" \
	eval "guard_chain | grep -q 'udp dport 1900 update @ssdp_rate { ip saddr limit rate over $ssdp_rate/second burst $ssdp_burst packets } counter .* drop'"

lab_say "2. from the WAN side (the carrier's namespace): no answer, nothing made"
drops0=$(guard_drops)
for target in "$gw_wan" "$gw_lan"; do
	for port in "$desc_port" "$control_port"; do
		lab_exec cgn timeout 20 "$PY" "$client" probe-wan "$target" "$port" \
			>"$LAB_TMP/wan.json" 2>&1
		echo "  cgn -> $target tcp/$port and udp/1900: $(cat "$LAB_TMP/wan.json")"
		lab_check "no TCP connection to $target:$port from the WAN side" \
			[ "$(jf wan tcp_connect)" = False ]
		lab_check "no SSDP answer from $target:1900 to a unicast M-SEARCH from the WAN side" \
			[ -z "$(jf wan ssdp_answer)" ]
	done
	lab_exec cgn "$ctl" map -S "$target" -p tcp -i 5000 -e 5000 -l 120 -w 3 \
		>"$LAB_TMP/wan_pcp.out" 2>&1
	rc=$?
	echo "  cgn -> $target:5351 PCP MAP: exit $rc: $(head -1 "$LAB_TMP/wan_pcp.out")"
	lab_check "a PCP MAP from the WAN side to $target:5351 gets no answer (exit 2)" [ "$rc" = 2 ]
	lab_exec cgn timeout 5 natpmpc -g "$target" -a 5001 5001 udp 120 \
		>"$LAB_TMP/wan_natpmp.out" 2>&1
	lab_check "a NAT-PMP request from the WAN side to $target:5351 gets no answer" \
		not grep -Eq "Public IP address|Mapped public port" "$LAB_TMP/wan_natpmp.out"
done
lab_check "nothing was made: the mapping table is empty" [ "$(gw_count)" = 0 ]
lab_check "nothing was made: the carrier has no port 5000 or 5001" \
	eval "! carrier_has_port 5000 && ! carrier_has_port 5001"
drops1=$(guard_drops)
echo "  the guard's drop counters: $drops0 -> $drops1 packets"
lab_check "the guard's drop rules counted them" [ "$drops1" -gt "$drops0" ]

lab_say "3. from the LAN everything still works"
lab_exec lan timeout 10 "$PY" "$client" discover \
	urn:schemas-upnp-org:device:InternetGatewayDevice:1 >"$LAB_TMP/disc.out" 2>&1
loc=$(sed -n 's/^location=//p' "$LAB_TMP/disc.out")
lab_check "SSDP: an M-SEARCH from the LAN is answered ($loc)" \
	eval "echo '$loc' | grep -q '^http://$gw_lan:$desc_port/'"
fetch() { # NS [SECS]: the description, within SECS (5) s
	lab_exec "$1" "$PY" -c 'import sys, urllib.request
sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=int(sys.argv[2])).read())' \
		"$loc" "${2:-5}"
}
fetch_slow() { fetch "$1" 65; }
# NS: GetExternalIPAddress straight to the control URL (no description fetch first)
soap_direct() {
	lab_exec "$1" "$PY" -c '
import sys, urllib.request
st = "urn:schemas-upnp-org:service:WANIPConnection:1"
body = ("<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/"
        "envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\">"
        "<s:Body><u:GetExternalIPAddress xmlns:u=\"%s\"/></s:Body></s:Envelope>" % st)
req = urllib.request.Request(sys.argv[1], data=body.encode(), headers={
    "Content-Type": "text/xml", "SOAPAction": "\"%s#GetExternalIPAddress\"" % st})
sys.stdout.buffer.write(urllib.request.urlopen(req, timeout=5).read())' \
		"http://$gw_lan:$control_port/ctl/IPConn"
}
lab_check "the description is served to the LAN host" \
	eval "fetch lan | grep -q InternetGatewayDevice"
lab_exec lan timeout 30 "$PY" "$client" call "$loc" GetExternalIPAddress \
	>"$LAB_TMP/soap.json" 2>&1
lab_check "SOAP GetExternalIPAddress on the control port: the carrier's address" \
	[ "$(jf soap out NewExternalIPAddress)" = "$ext" ]
lab_exec lan timeout 30 "$PY" "$client" call-pupnp "$loc" GetExternalIPAddress \
	>"$LAB_TMP/soap2.json" 2>&1
lab_check "SOAP GetExternalIPAddress on pupnp's port: the carrier's address" \
	[ "$(jf soap2 out NewExternalIPAddress)" = "$ext" ]
lab_exec lan "$ctl" map -S "$gw_lan" -p tcp -i 45000 -e 45000 -l 300 -w 10 \
	>"$LAB_TMP/lan_pcp.out" 2>&1
rc=$?
sed 's/^/  /' "$LAB_TMP/lan_pcp.out" | head -5
lab_check "a PCP MAP from the LAN succeeds (exit 0)" [ "$rc" = 0 ]
lab_check "... granted by the carrier (its answers from :5351 pass the guard)" \
	carrier_has_port 45000
lab_exec lan timeout 20 natpmpc -g "$gw_lan" -a 45001 45001 udp 300 \
	>"$LAB_TMP/lan_natpmp.out" 2>&1
lab_check "a NAT-PMP mapping from the LAN succeeds" \
	grep -q "Mapped public port" "$LAB_TMP/lan_natpmp.out"
lab_check "the gateway has both mappings" [ "$(gw_count)" = 2 ]
# RFC 6887 §15: a delete names the mapping's nonce
nonce=$(sed -n 's/^nonce //p' "$LAB_TMP/lan_pcp.out")
lab_exec lan "$ctl" map -S "$gw_lan" -p tcp -i 45000 -e 45000 -N "$nonce" -l 0 -w 10 \
	>/dev/null 2>&1
lab_exec lan timeout 20 natpmpc -g "$gw_lan" -a 45001 45001 udp 0 >/dev/null 2>&1
lab_check "... and both are deleted again" lab_wait_for "[ \"\$(gw_count)\" = 0 ]" 5

lab_say "4. one LAN host cannot hold pupnp's HTTP server"
# 40 idle connections from lan; each result "ok", "refused" or an error name; held open
# until $LAB_TMP/release exists (at most 90 s)
lab_bg lan "$LAB_TMP/hog.out" "$PY" -u -c '
import os, socket, sys, time
host, port, release = sys.argv[1], int(sys.argv[2]), sys.argv[3]
held, res = [], {}
for i in range(40):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        held.append(s)
        r = "ok"
    except ConnectionRefusedError:
        r = "refused"
    except OSError as e:
        r = type(e).__name__
    res[r] = res.get(r, 0) + 1
print(" ".join("%s=%d" % kv for kv in sorted(res.items())))
print("holding", flush=True)
deadline = time.time() + 90
while not os.path.exists(release) and time.time() < deadline:
    time.sleep(0.1)
for s in held:
    s.close()
print("released", flush=True)' "$gw_lan" "$desc_port" "$LAB_TMP/release"
hog=$LAB_LAST_PID
lab_wait_for "grep -q holding '$LAB_TMP/hog.out'" 30
echo "  40 connections from $LAB_LAN_HOST_IP: $(head -1 "$LAB_TMP/hog.out")"
lab_check "the first $limit are accepted, the other $((40 - limit)) refused with a reset" \
	[ "$(head -1 "$LAB_TMP/hog.out")" = "ok=$limit refused=$((40 - limit))" ]
lab_check "meanwhile $LAB_LAN2_HOST_IP's SOAP to the control port is answered within 5 s" \
	eval "soap_direct lan2 | grep -q '<NewExternalIPAddress>$ext</NewExternalIPAddress>'"
# pupnp 1.8.4's thread pool may not grow when a job arrives while its workers are busy
# (seen with 2 idle connections after an idle period): the fetch can then wait for
# pupnp's 30 s read timeout to free a worker (docs/upnp.md). Without the limit the 40
# connections would hold its workers for minutes; with it, about two timeouts at most.
t0=$EPOCHREALTIME
lab_check "meanwhile $LAB_LAN2_HOST_IP fetches the description within 65 s (2 pupnp timeouts)" \
	eval "fetch_slow lan2 | grep -q InternetGatewayDevice"
echo "  (in $(calc "$EPOCHREALTIME - $t0") s)"
touch "$LAB_TMP/release"
lab_wait_for "grep -q released '$LAB_TMP/hog.out'" 5
lab_kill "$hog"
lab_check "once they are closed, $LAB_LAN_HOST_IP is served again" \
	eval "fetch_slow lan | grep -q InternetGatewayDevice"

# NS SRC HOST PORT ACTION [NAME=VALUE...]: one SOAP call from the source address SRC
# (upnp_soap_client.py call-from); JSON: status, errorCode, bytes received, error
soap_from() {
	local ns=$1
	shift
	lab_exec "$ns" "$PY" "$client" call-from "$@"
}
# NAME FIELD: a field of $LAB_TMP/NAME.json
jv() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$LAB_TMP/$1.json" "$2"; }

lab_say "5. split horizon: a control point outside the LAN prefixes"
lab_exec lan ip addr add "$spoof/32" dev "$LAB_LAN_IF"
# the gateway routes the answers back over the LAN (else the handshake could not
# complete and nothing would be tested)
lab_exec gw ip route add "$spoof/32" dev "$LAB_GW_LAN_IF"
for port in "$desc_port" "$control_port"; do
	soap_from lan "$spoof" "$gw_lan" "$port" GetExternalIPAddress >"$LAB_TMP/sp_$port.json"
	soap_from lan "$spoof" "$gw_lan" "$port" AddPortMapping NewRemoteHost= \
		NewExternalPort=46000 NewProtocol=TCP NewInternalPort=46000 \
		NewInternalClient="$spoof" NewEnabled=1 NewPortMappingDescription=spoof \
		NewLeaseDuration=0 >"$LAB_TMP/spadd_$port.json"
	echo "  $spoof -> :$port: $(cat "$LAB_TMP/sp_$port.json") $(cat "$LAB_TMP/spadd_$port.json")"
done
lab_check "pupnp's port answers GetExternalIPAddress from $spoof with 606 (Action not authorized)" \
	eval "[ \"\$(jv sp_$desc_port status)\" = 500 ] && [ \"\$(jv sp_$desc_port code)\" = 606 ]"
lab_check "... and AddPortMapping too" \
	eval "[ \"\$(jv spadd_$desc_port status)\" = 500 ] && [ \"\$(jv spadd_$desc_port code)\" = 606 ]"
lab_check "the control port closes $spoof's connections without a byte" \
	eval "[ \"\$(jv sp_$control_port bytes)\" = 0 ] && [ \"\$(jv spadd_$control_port bytes)\" = 0 ]"
lab_check "nothing was made: no mapping, no carrier port 46000" \
	eval "[ \"\$(gw_count)\" = 0 ] && ! carrier_has_port 46000"
lab_check "both refusals are logged" \
	eval "grep -q 'upnp: refused a control point outside the LAN: $spoof' '$LAB_TMP/pcp-iwfd.log' &&
		grep -q 'upnp http: refused a control point outside the LAN: $spoof' '$LAB_TMP/pcp-iwfd.log'"
soap_from lan - "$gw_lan" "$desc_port" GetExternalIPAddress >"$LAB_TMP/sp_lan.json"
lab_check "the same host from its LAN address is answered on pupnp's port" \
	[ "$(jv sp_lan status)" = 200 ]
lab_exec gw ip route del "$spoof/32" dev "$LAB_GW_LAN_IF"
lab_exec lan ip addr del "$spoof/32" dev "$LAB_LAN_IF"

lab_say "6. the SSDP rate: 200 M-SEARCH in a second from one LAN host"
# NS COUNT SECS: COUNT unicast M-SEARCH (ST upnp:rootdevice: one answer each, MX 1)
# spread over SECS s; prints the answers received until 3 s after the last one, and
# the time the sending took
msearch() {
	lab_exec "$1" "$PY" -c '
import socket, sys, time
host, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
msg = (b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
       b"MAN: \"ssdp:discover\"\r\nMX: 1\r\nST: upnp:rootdevice\r\n\r\n")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
t0 = time.monotonic()
for i in range(n):
    s.sendto(msg, (host, 1900))
    time.sleep(max(0.0, t0 + (i + 1) * secs / n - time.monotonic()))
took = time.monotonic() - t0
answers, end = 0, time.monotonic() + 3
while time.monotonic() < end:
    s.settimeout(max(0.01, end - time.monotonic()))
    try:
        if s.recv(4096).startswith(b"HTTP/1.1 200"):
            answers += 1
    except socket.timeout:
        pass
print(answers, "%.2f" % took)' "$gw_lan" "$2" "$3"
}
ssdp_drops() {
	guard_chain | sed -n 's/.*@ssdp_rate .* counter packets \([0-9]*\) bytes [0-9]* drop$/\1/p'
}
sd0=$(ssdp_drops)
read -r answers took < <(msearch lan 200 1)
sd1=$(ssdp_drops)
# what the rate lets through while sending, with a second of slack
bound=$(calc_int "$ssdp_burst + $ssdp_rate * ($took + 1)")
echo "  200 M-SEARCH in $took s: $answers answers (bound $bound); SSDP drops $sd0 -> $sd1"
lab_check "$LAB_LAN_HOST_IP got at least one answer and at most $bound" \
	eval "[ '$answers' -ge 1 ] && [ '$answers' -le '$bound' ]"
lab_check "the rest was dropped by the SSDP rate rule (at least $((200 - bound)))" \
	[ "$((sd1 - sd0))" -ge "$((200 - bound))" ]
read -r answers2 _ < <(msearch lan2 1 0)
lab_check "$LAB_LAN2_HOST_IP's M-SEARCH right after is answered ($answers2)" [ "$answers2" -ge 1 ]
sleep 1
read -r answers3 _ < <(msearch lan 1 0)
lab_check "after a second of silence $LAB_LAN_HOST_IP is answered again ($answers3)" \
	[ "$answers3" -ge 1 ]

lab_say "7. the per-host SOAP rate (rate_limit = 1, rate_burst = 2)"
reloads() { grep -c 'configuration reloaded from' "$LAB_TMP/pcp-iwfd.log"; }
r0=$(reloads)
write_conf "$LAB_GW_LAN_IF" "$LAB_GW_LAN2_IF"
printf 'rate_limit = 1\nrate_burst = 2\n' >>"$conf"
kill -HUP "$daemon_pid"
lab_check "the daemon reloaded" lab_wait_for "[ \"\$(reloads)\" -gt $r0 ]" 5
# NS PORT N: N quick GetStatusInfo calls; prints "OK 501 SECONDS"
burst_calls() {
	local ok=0 limited=0 t0=$EPOCHREALTIME i
	for i in $(seq "$3"); do
		soap_from "$1" - "$gw_lan" "$2" GetStatusInfo >"$LAB_TMP/rl.json"
		case "$(jv rl status)/$(jv rl code)" in
		200/0) ok=$((ok + 1)) ;;
		500/501) limited=$((limited + 1)) ;;
		esac
	done
	echo "$ok $limited $(calc "$EPOCHREALTIME - $t0")"
}
for port in "$control_port" "$desc_port"; do
	# a second of silence: each host's bucket holds its burst again
	sleep 1.5
	read -r ok limited secs < <(burst_calls lan "$port" 6)
	echo "  6 calls from $LAB_LAN_HOST_IP to :$port in $secs s: $ok answered, $limited 501"
	lab_check ":$port: the burst is served, the calls beyond it get 501 Action Failed" \
		eval "[ '$ok' -ge 2 ] && [ '$limited' -ge 1 ] && [ \$((ok + limited)) = 6 ] &&
			[ '$ok' -le \$(calc_int '2 + $secs + 1') ]"
	read -r ok2 limited2 _ < <(burst_calls lan2 "$port" 1)
	lab_check ":$port: $LAB_LAN2_HOST_IP is served meanwhile" [ "$ok2/$limited2" = 1/0 ]
done
lab_check "the refusals are logged" \
	eval "grep -q 'upnp http: over its request rate: 501 to $LAB_LAN_HOST_IP' '$LAB_TMP/pcp-iwfd.log' &&
		grep -q 'upnp: over its request rate: 501 to $LAB_LAN_HOST_IP' '$LAB_TMP/pcp-iwfd.log'"

lab_say "8. a reload that changes lan_interface re-applies the guard"
write_conf "$LAB_GW_LAN_IF"
kill -HUP "$daemon_pid"
lab_check "the drop rules now name lo and lan0 only" \
	lab_wait_for "guard_chain | grep -q 'iifname != { \"lo\", \"lan0\" } udp dport { 1900, 5351 }'" 5
lab_check "... with the same TCP ports" \
	eval "guard_chain | grep -Eq 'iifname != \\{ \"lo\", \"lan0\" \\} tcp dport $ports_re'"

lab_say "9. the owner rule (X-04): the daemon's user opens no TCP off the LAN"
owner_chain() { lab_exec gw nft list chain ip "$table" output; }
uid=$(id -u "$LAB_DAEMON_USER")
owner_chain | sed 's/^/  /'
lab_check "the output chain refuses new TCP of uid $uid leaving through neither lo nor lan0" \
	eval "owner_chain | grep -q 'meta skuid $uid oifname != { \"lo\", \"lan0\" } tcp flags syn / syn,ack counter .* reject with tcp reset'"
# listeners on the WAN side (the carrier) and on the LAN host, port 8099
listen_py='import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8099)); s.listen(16); time.sleep(30)'
lab_bg cgn "$LAB_TMP/listen-cgn.log" "$PY" -c "$listen_py"
listen_cgn=$LAB_LAST_PID
lab_bg lan "$LAB_TMP/listen-lan.log" "$PY" -c "$listen_py"
listen_lan=$LAB_LAST_PID
sleep 0.5
# AS ADDR: "connected", "refused" or another error, from the gateway
connect_as() {
	local as=(setpriv --reuid "$1" --regid "$1" --clear-groups)
	[ "$1" = root ] && as=()
	lab_exec gw "${as[@]}" "$PY" -c '
import socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], 8099)); print("connected")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print(type(e).__name__)' "$2"
}
lab_check "as $LAB_DAEMON_USER, a TCP connection to the WAN side ($LAB_CGN_IP) is refused" \
	[ "$(connect_as "$LAB_DAEMON_USER" "$LAB_CGN_IP")" = refused ]
lab_check "... as root it connects (the rule is the daemon user's alone)" \
	[ "$(connect_as root "$LAB_CGN_IP")" = connected ]
lab_check "as $LAB_DAEMON_USER, a TCP connection to the LAN host connects (GENA to LAN callbacks)" \
	[ "$(connect_as "$LAB_DAEMON_USER" "$LAB_LAN_HOST_IP")" = connected ]
lab_kill "$listen_cgn"
lab_kill "$listen_lan"

lab_say "the end"
lab_check "the daemon is still running" daemon_alive
lab_kill "$daemon_pid"
lab_check "no sanitizer report in the daemon log" \
	eval "! grep -q 'AddressSanitizer\|LeakSanitizer\|runtime error:' '$LAB_TMP/pcp-iwfd.log'"
lab_check "the guard stays in the kernel after the daemon stopped (like the map)" \
	eval "guard_chain | grep -q 'udp dport { 1900, 5351 }'"

if [ "$LAB_FAILS" -ne 0 ]; then
	echo "--- daemon log (last 60 lines)"
	tail -60 "$LAB_TMP/pcp-iwfd.log"
	echo "FAIL - $LAB_FAILS check(s) failed"
	exit 1
fi
echo "PASS - wan_guard"
exit 0
