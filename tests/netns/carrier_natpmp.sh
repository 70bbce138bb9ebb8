#!/bin/bash
# carrier_natpmp.sh BUILD_DIR: the lab's carrier (miniupnpd) works on its own, before any
# pcp-iwfd code is involved. From the gateway namespace natpmpc learns the carrier's
# external address and maps TCP 5000 and UDP 5001; the mapping shows up as nft rules in the
# carrier, and real TCP and UDP from the internet host reach listeners on the gateway
# through it (and do not before the mapping exists). Deleting the mapping removes the rule.
# Exit: 0 pass, 1 fail, 77 skip (not root, a tool missing). BUILD_DIR is not used.

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"

lab_skip_unless_ready natpmpc
lab_hard_timeout 120 "$0" "$@"

lab_up || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }

out="$LAB_TMP/natpmpc.out"
lab_exec gw timeout 10 natpmpc -g "$LAB_CGN_IP" >"$out" 2>&1
lab_check "natpmpc -g shows the carrier's external address $LAB_CGN_EXT_IP" \
	grep -q "Public IP address : $LAB_CGN_EXT_IP\$" "$out" || cat "$out"

# Negative control: without a mapping the carrier drops what comes from outside.
lab_listen gw tcp 5000 "$LAB_TMP/tcp-before.out" ||
	{ echo "FAIL - no TCP listener on gw:5000"; exit 1; }
before_pid=$LAB_LAST_PID
lab_send inet tcp "$LAB_CGN_EXT_IP" 5000 "before-mapping-$$" >/dev/null 2>&1
lab_check "without a mapping, TCP to $LAB_CGN_EXT_IP:5000 does not reach the gateway" \
	test ! -s "$LAB_TMP/tcp-before.out"
lab_kill "$before_pid"

lab_exec gw timeout 10 natpmpc -g "$LAB_CGN_IP" -a 5000 5000 tcp 60 >"$out" 2>&1
lab_check "natpmpc maps TCP 5000 on the carrier" \
	grep -q "Mapped public port 5000 protocol TCP to local port 5000" "$out" || cat "$out"
lab_exec gw timeout 10 natpmpc -g "$LAB_CGN_IP" -a 5001 5001 udp 60 >"$out" 2>&1
lab_check "natpmpc maps UDP 5001 on the carrier" \
	grep -q "Mapped public port 5001 protocol UDP to local port 5001" "$out" || cat "$out"

lab_exec cgn nft list ruleset >"$LAB_TMP/ruleset" 2>&1
lab_check "the carrier's nft ruleset DNATs TCP 5000 to the gateway" \
	grep -Eq "th dport 5000 dnat ip to $LAB_GW_WAN_IP:5000\$" "$LAB_TMP/ruleset"
lab_check "the carrier's nft ruleset DNATs UDP 5001 to the gateway" \
	grep -Eq "th dport 5001 dnat ip to $LAB_GW_WAN_IP:5001\$" "$LAB_TMP/ruleset" ||
	cat "$LAB_TMP/ruleset"

lab_listen gw tcp 5000 "$LAB_TMP/tcp.out" || { echo "FAIL - no TCP listener"; exit 1; }
tcp_pid=$LAB_LAST_PID
lab_send inet tcp "$LAB_CGN_EXT_IP" 5000 "tcp-through-carrier-$$"
lab_wait_for "grep -q tcp-through-carrier-$$ $LAB_TMP/tcp.out" 5
lab_check "TCP from the internet host to $LAB_CGN_EXT_IP:5000 reaches gw:5000" \
	grep -q "tcp-through-carrier-$$" "$LAB_TMP/tcp.out"
lab_kill "$tcp_pid"

lab_listen gw udp 5001 "$LAB_TMP/udp.out" || { echo "FAIL - no UDP listener"; exit 1; }
udp_pid=$LAB_LAST_PID
lab_send inet udp "$LAB_CGN_EXT_IP" 5001 "udp-through-carrier-$$"
lab_wait_for "grep -q udp-through-carrier-$$ $LAB_TMP/udp.out" 5
lab_check "a UDP datagram from the internet host to $LAB_CGN_EXT_IP:5001 reaches gw:5001" \
	grep -q "udp-through-carrier-$$" "$LAB_TMP/udp.out"
lab_kill "$udp_pid"

# NAT-PMP delete: lifetime 0 (RFC 6886 §3.4)
lab_exec gw timeout 10 natpmpc -g "$LAB_CGN_IP" -a 5000 5000 tcp 0 >"$out" 2>&1
lab_exec cgn nft list ruleset >"$LAB_TMP/ruleset" 2>&1
lab_check "deleting the TCP mapping removes its rule from the carrier" \
	sh -c "! grep -q 'th dport 5000 dnat' '$LAB_TMP/ruleset'"

if [ "$LAB_FAILS" -ne 0 ]; then
	echo "carrier_natpmp: $LAB_FAILS check(s) failed"
	exit 1
fi
echo "carrier_natpmp: all checks passed"
exit 0
