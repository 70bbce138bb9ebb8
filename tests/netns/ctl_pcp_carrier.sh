#!/bin/bash
# ctl_pcp_carrier.sh BUILD_DIR: pcp-iwfctl's native PCP client against a real carrier PCP
# server (miniupnpd 2.3.x in the lab's cgn namespace), run from the gateway namespace:
# MAP (with real TCP through the mapping), refresh, a delete with the wrong nonce
# (NOT_AUTHORIZED, exit 1), delete, ANNOUNCE and its epoch across a carrier restart,
# PREFER_FAILURE, DESCRIPTION, THIRD_PARTY (real TCP to the LAN host) and PEER.
# Follows INTERFACE.md "Control client: pcp-iwfctl".
# Exit: 0 pass, 1 fail, 77 skip (not root, a tool missing, no pcp-iwfctl in BUILD_DIR).

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"

build="${1:-}"
ctl="$build/pcp-iwfctl"
if [ -z "$build" ] || [ ! -x "$ctl" ]; then
	echo "SKIP: no pcp-iwfctl in build directory '${build}'" >&2
	exit 77
fi
if ! "$ctl" map --help >/dev/null 2>&1; then
	echo "SKIP: '$ctl map --help' fails: the native PCP client is not there yet" >&2
	exit 77
fi
lab_skip_unless_ready
lab_hard_timeout 180 "$0" "$@"

# jget FILE KEY: one field of the JSON object in FILE (strings bare, numbers as numbers)
jget() {
	python3 -c 'import json, sys
obj = json.load(open(sys.argv[1]))
if sys.argv[2] not in obj:
    sys.exit(1)
print(obj[sys.argv[2]])' "$1" "$2" 2>/dev/null
}

# ctl NAME ARGS...: run pcp-iwfctl in the gateway namespace; its JSON goes to
# $LAB_TMP/NAME.json, its exit status to $LAB_TMP/NAME.rc
ctl() {
	local name="$1" rc
	shift
	lab_exec gw timeout 30 "$ctl" "$@" --json >"$LAB_TMP/$name.json" 2>"$LAB_TMP/$name.err"
	rc=$?
	echo "$rc" >"$LAB_TMP/$name.rc"
	printf '  [%s: exit %s] %s\n' "$name" "$rc" "$(tr -d '\n' <"$LAB_TMP/$name.json")"
	[ -s "$LAB_TMP/$name.err" ] && sed 's/^/  stderr: /' "$LAB_TMP/$name.err"
	return 0
}

rc_is() { [ "$(cat "$LAB_TMP/$1.rc")" = "$2" ]; }
field_is() { [ "$(jget "$LAB_TMP/$1.json" "$2")" = "$3" ]; }
is_uint() { case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }
ruleset() { lab_exec cgn nft list ruleset; }
has_rule() { ruleset | grep -Eq "$1"; }
no_rule() { ! ruleset | grep -Eq "$1"; }

lab_up || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }
S="$LAB_CGN_IP"

# --- MAP ---
ctl map1 map -S "$S" -p tcp -i 6000 -l 300 -w 5
lab_check "map: exit 0" rc_is map1 0
lab_check "map: result SUCCESS" field_is map1 result SUCCESS
lab_check "map: result_code 0" field_is map1 result_code 0
lab_check "map: external_address is the carrier's ($LAB_CGN_EXT_IP)" \
	field_is map1 external_address "$LAB_CGN_EXT_IP"
lab_check "map: protocol tcp" field_is map1 protocol tcp
lab_check "map: internal_port 6000" field_is map1 internal_port 6000
nonce=$(jget "$LAB_TMP/map1.json" nonce)
eport=$(jget "$LAB_TMP/map1.json" external_port)
lifetime=$(jget "$LAB_TMP/map1.json" lifetime)
epoch1=$(jget "$LAB_TMP/map1.json" epoch)
lab_check "map: nonce is 24 hex digits" sh -c "echo '$nonce' | grep -Eqx '[0-9a-fA-F]{24}'"
lab_check "map: external_port is a port" sh -c "[ '${eport:-0}' -gt 0 ] 2>/dev/null"
lab_check "map: lifetime granted (0 < $lifetime <= 300)" \
	sh -c "[ '${lifetime:-0}' -gt 0 ] && [ '${lifetime:-0}' -le 300 ] 2>/dev/null"
lab_check "map: epoch is a number" is_uint "$epoch1"
eport=${eport:-0}
lab_check "map: the carrier DNATs $LAB_CGN_EXT_IP:$eport to $LAB_GW_WAN_IP:6000" \
	has_rule "th dport $eport dnat ip to $LAB_GW_WAN_IP:6000\$"

lab_listen gw tcp 6000 "$LAB_TMP/tcp6000.out" || { echo "FAIL - no listener on gw:6000"; exit 1; }
listen_pid=$LAB_LAST_PID
lab_send inet tcp "$LAB_CGN_EXT_IP" "$eport" "pcp-map-$$"
lab_wait_for "grep -q pcp-map-$$ $LAB_TMP/tcp6000.out" 5
lab_check "map: TCP from the internet host to $LAB_CGN_EXT_IP:$eport reaches gw:6000" \
	grep -q "pcp-map-$$" "$LAB_TMP/tcp6000.out"
lab_kill "$listen_pid"

# --- refresh: same nonce, same suggested port (RFC 6887 §11.2.1) ---
ctl refresh map -S "$S" -p tcp -i 6000 -e "$eport" -l 300 -N "$nonce" -w 5
lab_check "refresh: SUCCESS" field_is refresh result SUCCESS
lab_check "refresh: same external port $eport" field_is refresh external_port "$eport"
lab_check "refresh: same nonce echoed" sh -c \
	"[ \"\$(echo '$(jget "$LAB_TMP/refresh.json" nonce)' | tr A-F a-f)\" = \"\$(echo '$nonce' | tr A-F a-f)\" ]"

# --- delete with someone else's nonce: miniupnpd says NOT_AUTHORIZED ---
other=000000000000000000000001
[ "$nonce" = "$other" ] && other=000000000000000000000002
ctl baddelete map -S "$S" -p tcp -i 6000 -l 0 -N "$other" -w 5
lab_check "delete with a wrong nonce: exit 1" rc_is baddelete 1
lab_check "delete with a wrong nonce: NOT_AUTHORIZED" field_is baddelete result NOT_AUTHORIZED
lab_check "delete with a wrong nonce: the rule stays" \
	has_rule "th dport $eport dnat ip to $LAB_GW_WAN_IP:6000\$"

# --- delete ---
ctl delete map -S "$S" -p tcp -i 6000 -l 0 -N "$nonce" -w 5
lab_check "delete: exit 0" rc_is delete 0
lab_check "delete: SUCCESS" field_is delete result SUCCESS
lab_check "delete: lifetime 0" field_is delete lifetime 0
lab_check "delete: the carrier's rule is gone" no_rule "dnat ip to $LAB_GW_WAN_IP:6000\$"

# --- PREFER_FAILURE with an external address the carrier does not have ---
ctl pfail map -S "$S" -p udp -i 6010 -e 6010 -E 203.0.113.77 -F -l 300 -w 5
lab_check "prefer-failure, foreign external address: exit 1" rc_is pfail 1
lab_check "prefer-failure, foreign external address: CANNOT_PROVIDE_EXTERNAL" \
	field_is pfail result CANNOT_PROVIDE_EXTERNAL
lab_check "prefer-failure: no rule was made" no_rule "dnat ip to $LAB_GW_WAN_IP:6010\$"

# --- DESCRIPTION (RFC 7220): miniupnpd ignores it but must still map. Its option parser
# does not skip padding, so the text is 8 bytes long (a multiple of 4) on purpose.
ctl desc map -S "$S" -p udp -i 6020 -l 300 -D labtest1 -w 5
lab_check "description: SUCCESS" field_is desc result SUCCESS
lab_check "description: the carrier DNATs UDP to gw:6020" \
	has_rule "dnat ip to $LAB_GW_WAN_IP:6020\$"

# --- ANNOUNCE ---
ctl announce announce -S "$S" -w 5
lab_check "announce: exit 0" rc_is announce 0
lab_check "announce: SUCCESS" field_is announce result SUCCESS
epoch2=$(jget "$LAB_TMP/announce.json" epoch)
lab_check "announce: epoch is a number" is_uint "$epoch2"
lab_check "announce: epoch ($epoch2) did not go back since the map ($epoch1)" \
	sh -c "[ '${epoch2:-0}' -ge '${epoch1:-1}' ] 2>/dev/null"

# --- THIRD_PARTY: the gateway maps for the LAN host (the nat = none case) ---
ctl third map -S "$S" -p tcp -i 6030 -T "$LAB_LAN_HOST_IP" -l 300 -w 5
lab_check "third party: SUCCESS" field_is third result SUCCESS
teport=$(jget "$LAB_TMP/third.json" external_port)
teport=${teport:-0}
lab_check "third party: the carrier DNATs to $LAB_LAN_HOST_IP:6030" \
	has_rule "th dport $teport dnat ip to $LAB_LAN_HOST_IP:6030\$"
lab_listen lan tcp 6030 "$LAB_TMP/tcp6030.out" || { echo "FAIL - no listener on lan:6030"; exit 1; }
listen_pid=$LAB_LAST_PID
lab_send inet tcp "$LAB_CGN_EXT_IP" "$teport" "pcp-third-party-$$"
lab_wait_for "grep -q pcp-third-party-$$ $LAB_TMP/tcp6030.out" 5
lab_check "third party: TCP from the internet host reaches the LAN host's port 6030" \
	grep -q "pcp-third-party-$$" "$LAB_TMP/tcp6030.out"
lab_kill "$listen_pid"

# --- PEER ---
ctl peer peer -S "$S" -p tcp -i 6100 -r "$LAB_INET_IP:8080" -l 300 -w 5
lab_check "peer: exit 0" rc_is peer 0
lab_check "peer: SUCCESS" field_is peer result SUCCESS
lab_check "peer: external_address is the carrier's" field_is peer external_address "$LAB_CGN_EXT_IP"
peport=$(jget "$LAB_TMP/peer.json" external_port)
lab_check "peer: the carrier installed a SNAT rule for it" \
	has_rule "snat ip to $LAB_CGN_EXT_IP:${peport:-0}\$"

# --- a carrier restart resets its epoch (system_uptime=no), ANNOUNCE shows it ---
sleep 2
ctl before announce -S "$S" -w 5
epoch3=$(jget "$LAB_TMP/before.json" epoch)
lab_stop_carrier
lab_start_carrier || { echo "FAIL - the carrier did not restart"; exit 1; }
ctl after announce -S "$S" -w 5
epoch4=$(jget "$LAB_TMP/after.json" epoch)
lab_check "carrier restart: epoch went back ($epoch3 -> $epoch4)" \
	sh -c "[ '${epoch4:-99999}' -lt '${epoch3:-0}' ] 2>/dev/null"

# --- no server: exit 2 ---
ctl noserver announce -S "$LAB_INET_ALT_IP" -w 2
lab_check "no answer from a server: exit 2" rc_is noserver 2

if [ "$LAB_FAILS" -ne 0 ]; then
	echo "ctl_pcp_carrier: $LAB_FAILS check(s) failed"
	exit 1
fi
echo "ctl_pcp_carrier: all checks passed"
exit 0
