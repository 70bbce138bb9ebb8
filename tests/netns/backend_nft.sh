#!/bin/bash
# backend_nft.sh BUILD_DIR - backend_nft against a real kernel, in the lab of scripts/lab.sh
# (lan - gw - cgn - inet; the cgn namespace plays the WAN peer, no carrier is started):
# a batch of three rules is one nftables transaction; a TCP connection and a UDP datagram
# from the WAN side to the gateway's WAN address:port reach a listener on the LAN host
# through a router firewall that drops everything but our conntrack mark; a removed rule
# stops them; a rule with a 3 s timeout disappears by itself (kernel expiry), and a
# refresh after such an expiry still succeeds; reconcile adds the missing rule and removes
# the strangers; re-opening keeps the elements; no other table changes; destroy removes
# ours. A 2500-change commit (three transactions) and a reconcile that removes them.
# The guard (set_guard): its input chain's rules, a WAN packet to a guarded port dropped
# while the LAN's arrives, kept across a re-open and a reconcile, replaced, bad ones refused.
# Exit 0 pass, 1 fail, 77 skip.
set -u
build=${1:?usage: backend_nft.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
driver=$build/tests/nft_driver
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for network namespaces"; exit 77; }
for t in ip nft nc ss timeout python3; do
	command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done
[ -x "$driver" ] || { echo "SKIP: $driver not built"; exit 77; }
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"
lab_hard_timeout 240 "$0" "$@"
if ! ip netns add "iwfd$$-probe" 2>/dev/null; then
	echo "SKIP: cannot create network namespaces here"
	exit 77
fi
ip netns del "iwfd$$-probe"

LAB_PREFIX="iwfd$$-bn"
lab_up || { echo "FAIL: lab_up"; exit 1; }
table=iwfd_test
wan=$LAB_GW_WAN_IF
lan_host=$LAB_LAN_HOST_IP
gw_wan=$LAB_GW_WAN_IP
# BACKEND_CT_MARK / BACKEND_CT_MARK_MASK in src/backend.h
mark=0x1f1f0000
tmp=$LAB_TMP

drv() {
	lab_exec gw "$driver" "$table" "$wan" "$@" 2>>"$tmp/driver.err"
}
gwnft() {
	lab_exec gw nft "$@"
}
# Our map's elements, one "PROTO EXT ADDR INT TIMEOUT" line each, sorted (TIMEOUT 0: none).
# Protocols are listed as numbers (-p) and named here: nft names them through
# /etc/protocols, which a minimal system without netbase lacks (nftables only recommends
# it), and then prints "6" where this machine prints "tcp".
elements() {
	gwnft -j -p list map ip "$table" dnat_ports | python3 -c '
import json, sys
names = {6: "tcp", 17: "udp"}
for o in json.load(sys.stdin)["nftables"]:
    for key, val in o.get("map", {}).get("elem", []):
        t = 0
        if "elem" in key:
            t = key["elem"].get("timeout", 0)
            key = key["elem"]["val"]
        p, port = key["concat"]
        p = names.get(p, p)
        a, iport = val["concat"]
        print(p, port, a, iport, t)
' | sort
}
has_element() {
	elements | grep -q "^$1 $2 "
}
has_line() {
	elements | grep -qx "$1"
}
not() {
	! "$@"
}
# the driver's output of the last step holds this exact line
out_has() {
	printf '%s\n' "$out" | grep -qx "$1"
}
rules_in_chain() {
	gwnft list chain ip "$table" prerouting | grep -c "dnat ip to"
}

# The router's own firewall, as docs/deployment.md tells the admin to write it: forward
# drops everything but flows carrying our conntrack mark. Our DNATed flows must pass.
gwnft -f - <<EOF || { echo "FAIL: cannot create the router table"; exit 1; }
table ip lab_router {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct mark & $mark == $mark counter accept
	}
}
EOF
tables_before=$(gwnft list tables)
snap_before=$(gwnft -s list table ip lab_gw; gwnft -s list table ip lab_router)

lab_say "a batch of three rules is one transaction"
lab_bg gw "$tmp/monitor" nft monitor
monitor=$LAB_LAST_PID
sleep 0.5
out=$(drv "add tcp 6000 $lan_host 6000 60" "add udp 7001 $lan_host 7000 60" \
	"add tcp 6001 $lan_host 6001 60" pending commit pending)
sleep 0.5
lab_kill "$monitor"
lab_check "three callbacks with status 0" \
	test "$(echo "$out" | grep -c '^done add .* 0$')" = 3
lab_check "pending before the commit, not after" \
	test "$(echo "$out" | grep '^pending' | tr '\n' ' ')" = "pending yes pending no "
gens=$(grep -c "new generation .*(nft_driver)" "$tmp/monitor")
lab_check "two generations: the table setup and ONE batch (saw $gens)" test "$gens" = 2
lab_check "all three rules are there" \
	test "$(elements | grep -c " $lan_host ")" = 3
lab_check "the chain has one rule" test "$(rules_in_chain)" = 1

lab_say "traffic from the WAN side reaches the LAN host"
lab_listen lan tcp 6000 "$tmp/tcp.out"
lab_send cgn tcp "$gw_wan" 6000 "hello-tcp" >/dev/null 2>&1
lab_check "TCP $gw_wan:6000 -> $lan_host:6000" \
	lab_wait_for "grep -q hello-tcp $tmp/tcp.out" 5
lab_kill "$LAB_LAST_PID"
lab_listen lan udp 7000 "$tmp/udp.out"
lab_send cgn udp "$gw_wan" 7001 "hello-udp" >/dev/null 2>&1
lab_check "UDP $gw_wan:7001 -> $lan_host:7000" \
	lab_wait_for "grep -q hello-udp $tmp/udp.out" 5
lab_kill "$LAB_LAST_PID"
lab_check "the router's mark rule accepted them" \
	lab_wait_for "gwnft list table ip lab_router | grep -Eq 'counter packets [1-9]'" 1

lab_say "a removed rule stops the traffic"
out=$(drv "remove tcp 6000" commit)
lab_check "remove completes with 0" test "$out" = "done remove 6/6000 0"
lab_check "the element is gone" not has_element tcp 6000
lab_listen lan tcp 6000 "$tmp/tcp2.out"
lab_send cgn tcp "$gw_wan" 6000 "after-remove" >/dev/null 2>&1
sleep 1
lab_check "nothing reaches the LAN host" not grep -q after-remove "$tmp/tcp2.out"
lab_kill "$LAB_LAST_PID"

lab_say "bad rules fail alone"
out=$(drv "add 1 5 $lan_host 5 0" "add udp 7100 $lan_host 7100 60" commit)
lab_check "a protocol without ports: EPROTONOSUPPORT" out_has "done add 1/5 EPROTONOSUPPORT"
lab_check "the good change of the batch succeeds" out_has "done add 17/7100 0"

lab_say "the kernel expires a rule by itself"
out=$(drv "add udp 7002 $lan_host 7002 3" commit)
lab_check "a 3 s rule is installed" has_element udp 7002
sleep 4
lab_check "... and gone 4 s later without the daemon" not has_element udp 7002
# the record says installed, the kernel expired it: the batch fails, the rare path copes
out=$(drv "add tcp 6100 $lan_host 6100 2" commit "sleep 3" \
	"refresh tcp 6100 $lan_host 6100 60" "add udp 7003 $lan_host 7003 60" commit)
lab_check "a refresh after a kernel expiry still succeeds" out_has "done refresh 6/6100 0"
lab_check "... and so does the rest of its batch" out_has "done add 17/7003 0"
lab_check "... with the new timeout" has_line "tcp 6100 $lan_host 6100 60"
lab_check "the failed batch was reported" grep -q "applying them one by one" "$tmp/driver.err"

lab_say "re-opening the table keeps its elements"
before=$(elements)
drv </dev/null
lab_check "same elements after a re-open" test "$(elements)" = "$before"
lab_check "still one rule in the chain" test "$(rules_in_chain)" = 1

lab_say "a commit bigger than one transaction (NFT_BATCH_MAX = 1024 changes)"
python3 -c '
for port in range(20000, 22500):
    print("add udp %d 192.0.2.20 %d 600" % (port, port))
print("commit")' >"$tmp/big"
out=$(lab_exec gw "$driver" "$table" "$wan" <"$tmp/big" 2>>"$tmp/driver.err")
lab_check "2500 callbacks with status 0" test "$(grep -c '^done add 17/2[0-9]* 0$' <<<"$out")" = 2500
lab_check "2500 elements installed" test "$(elements | grep -c ' 192.0.2.20 ')" = 2500

lab_say "reconcile adds the missing and removes the strangers"
gwnft add element ip "$table" dnat_ports "{ tcp . 9000 : 192.0.2.99 . 9000 }"
cat >"$tmp/rules" <<EOF
tcp 6001 $lan_host 6001 120
udp 7001 $lan_host 7000 120
tcp 6200 $lan_host 6200 0
EOF
out=$(drv "reconcile $tmp/rules")
lab_check "reconcile returns 0" test "$out" = "reconcile 0"
expect=$(printf '%s\n' "tcp 6001 $lan_host 6001 120" "tcp 6200 $lan_host 6200 0" \
	"udp 7001 $lan_host 7000 120" | sort)
lab_check "exactly the rules given, timeouts re-armed" test "$(elements)" = "$expect"
lab_listen lan tcp 6200 "$tmp/tcp3.out"
lab_send cgn tcp "$gw_wan" 6200 "hello-reconciled" >/dev/null 2>&1
lab_check "the reconciled rule carries traffic" \
	lab_wait_for "grep -q hello-reconciled $tmp/tcp3.out" 5
lab_kill "$LAB_LAST_PID"

lab_say "the guard: the daemon's ports answer on the LAN only (set_guard)"
lan_if=$LAB_GW_LAN_IF
gw_lan=$LAB_GW_LAN_IP
guard_rules() {
	gwnft list chain ip "$table" input | grep -E 'drop$|reset$'
}
out=$(drv "guard $lan_if 49152,40001 5351,1900 1" pending commit pending)
lab_check "set_guard returns 0 and is pending until the commit" \
	test "$(echo "$out" | tr '\n' ' ')" = "guard 0 pending yes pending no "
lab_check "input chain: type filter hook input priority filter - 1" \
	eval "gwnft list chain ip $table input | grep -q 'type filter hook input priority filter - 1; policy accept;'"
lab_check "UDP 1900 and 5351 dropped unless from lo or $lan_if" \
	eval "guard_rules | grep -qx '[[:space:]]*iifname != { \"lo\", \"$lan_if\" } udp dport { 1900, 5351 } counter packets [0-9]* bytes [0-9]* drop'"
lab_check "TCP 40001 and 49152 dropped unless from lo or $lan_if" \
	eval "guard_rules | grep -qx '[[:space:]]*iifname != { \"lo\", \"$lan_if\" } tcp dport { 40001, 49152 } ct state new counter packets [0-9]* bytes [0-9]* drop'"
lab_check "new TCP connections to 49152 (the first port) limited to 4 per source, else a reset" \
	eval "guard_rules | grep -qx '[[:space:]]*tcp dport 49152 ct state new add @igd_conns { ip saddr . tcp dport ct count over 4 } counter packets [0-9]* bytes [0-9]* reject with tcp reset'"
lab_check "UDP 1900 (SSDP) from one source: at most 10/s after a burst of 30, else dropped" \
	eval "guard_rules | grep -qx '[[:space:]]*udp dport 1900 update @ssdp_rate { ip saddr limit rate over 10/second burst 30 packets } counter packets [0-9]* bytes [0-9]* drop'"
lab_check "UDP 1900 and 5351 from a source not routed back through its interface are dropped (strict rpf)" \
	eval "guard_rules | grep -qx '[[:space:]]*iifname != \"lo\" udp dport { 1900, 5351 } fib saddr . iif oif missing counter packets [0-9]* bytes [0-9]* drop'"
lab_check "five rules, nothing else" test "$(guard_rules | wc -l)" = 5
lab_listen gw tcp 49152 "$tmp/guard_tcp.out"
lab_send cgn tcp "$gw_lan" 49152 "from-the-wan" >/dev/null 2>&1
lab_check "TCP from the WAN side to the LAN address $gw_lan:49152 gets nowhere" \
	not grep -q from-the-wan "$tmp/guard_tcp.out"
lab_send lan tcp "$gw_lan" 49152 "from-the-lan" >/dev/null 2>&1
lab_check "... the same from the LAN host arrives" \
	lab_wait_for "grep -q from-the-lan $tmp/guard_tcp.out" 5
lab_kill "$LAB_LAST_PID"
lab_listen gw udp 5351 "$tmp/guard_udp.out"
lab_send cgn udp "$gw_wan" 5351 "udp-from-the-wan" >/dev/null 2>&1
lab_send lan udp "$gw_lan" 5351 "udp-from-the-lan" >/dev/null 2>&1
lab_check "UDP 5351 from the LAN arrives" lab_wait_for "grep -q udp-from-the-lan $tmp/guard_udp.out" 5
lab_check "... from the WAN side to $gw_wan:5351 it does not" \
	not grep -q udp-from-the-wan "$tmp/guard_udp.out"
lab_kill "$LAB_LAST_PID"
lab_check "the WAN packets were counted by the drop rules" \
	eval "guard_rules | grep drop | grep -Eq 'counter packets [1-9]'"
before=$(guard_rules | sed 's/counter packets [0-9]* bytes [0-9]*//')
drv </dev/null
lab_check "re-opening keeps the guard (no window at a restart)" \
	test "$(guard_rules | sed 's/counter packets [0-9]* bytes [0-9]*//')" = "$before"
out=$(drv "guard $lan_if 49152,40001 5351,1900 1" commit "reconcile /dev/null")
lab_check "a reconcile, which rewrites the table's chains, keeps it" \
	test "$(guard_rules | sed 's/counter packets [0-9]* bytes [0-9]*//')" = "$before"
out=$(drv "guard $lan_if,lan9 - 5351" commit)
lab_check "a new guard replaces the old: UDP 5351 only, two LAN interfaces, with its rpf rule" \
	eval "test \"\$(guard_rules | wc -l)\" = 2 && guard_rules | grep -q 'iifname != { \"lo\", \"$lan_if\", \"lan9\" } udp dport 5351 ' &&
		guard_rules | grep -q 'iifname != \"lo\" udp dport 5351 fib saddr . iif oif missing '"
out=$(drv "guard bad\"name - 5351" "guard $lan_if 0 -" "guard $lan_if 1,2,3,4,5,6,7,8,9 -" \
	"guard $lan_if 80 - 2" pending commit)
lab_check "bad guards are refused and change nothing" \
	eval "test \"\$(echo \"\$out\" | tr '\n' ' ')\" = 'guard -1 guard -1 guard -1 guard -1 pending no ' &&
		test \"\$(guard_rules | wc -l)\" = 2"

lab_say "nothing outside our table changed"
lab_check "the other tables are as they were" \
	test "$(gwnft -s list table ip lab_gw; gwnft -s list table ip lab_router)" = "$snap_before"
lab_check "the table list is the old one plus ours" \
	test "$(gwnft list tables)" = "$(printf '%s\ntable ip %s' "$tables_before" "$table")"

lab_say "destroy removes our table"
out=$(drv destroy)
lab_check "destroy returns 0" test "$out" = "destroy 0"
lab_check "the table list is the old one" test "$(gwnft list tables)" = "$tables_before"
out=$(lab_exec gw "$driver" "$table" "$wan" destroy 2>/dev/null)
lab_check "destroy is idempotent (it re-opens, then deletes)" test "$out" = "destroy 0"
lab_check "still only the old tables" test "$(gwnft list tables)" = "$tables_before"

# an ASan/UBSan build of the driver reports on its stderr
lab_check "no sanitizer reports from the driver" \
	not grep -qE "Sanitizer|runtime error" "$tmp/driver.err"

if [ "$LAB_FAILS" -gt 0 ]; then
	echo "driver messages:"
	sed 's/^/  /' "$tmp/driver.err"
	echo "FAIL: backend_nft ($LAB_FAILS checks)"
	exit 1
fi
echo "PASS: backend_nft"
exit 0
