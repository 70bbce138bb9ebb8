#!/bin/bash
# daemon_control.sh BUILD_DIR - the real pcp-iwfd in its own network namespace:
# -t on good and bad configurations, the control socket (mode 0600, status/list/delete
# through pcp-iwfctl, JSON fields of INTERFACE.md), SIGHUP reload keeping the old
# configuration on error, SIGTERM clean exit removing the socket.
# Exit 0 pass, 1 fail, 77 skip.
set -u
build=${1:?usage: daemon_control.sh BUILD_DIR}
daemon=$build/pcp-iwfd
ctl=$build/pcp-iwfctl
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root for network namespaces"; exit 77; }
for t in ip python3; do command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }; done
[ -x "$daemon" ] && [ -x "$ctl" ] || { echo "SKIP: binaries not built"; exit 77; }

ns=iwfd$$-dc
tmp=$(mktemp -d /tmp/iwfd-dc.XXXXXX)
# the daemon writes its state file here after dropping root to its user (docs/security.md)
chown pcp-iwfd: "$tmp" || { rm -rf "$tmp"; echo "SKIP: no user pcp-iwfd (scripts/install-deps)"; exit 77; }
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$tmp/log" ] && sed 's/^/  daemon: /' "$tmp/log"; exit 1; }
nsx() { ip netns exec "$ns" "$@"; }

ip netns add "$ns" || fail "cannot create namespace"
nsx ip link set lo up
# veth pairs (both ends in the namespace): the kernel may lack the dummy driver
nsx ip link add lan0 type veth peer name lan0p && nsx ip link add wan0 type veth peer name wan0p ||
	fail "cannot create links"
nsx ip link set lan0p up && nsx ip link set wan0p up
nsx ip addr add 192.0.2.1/24 dev lan0
nsx ip addr add 198.51.100.2/24 dev wan0
nsx ip link set lan0 up && nsx ip link set wan0 up

conf=$tmp/pcp-iwfd.conf
cat >"$conf" <<CONF
# the gateway is the last NAT in this test: no upstream_server
lan_interface = lan0
wan_interface = wan0
upnp = no
state_file = $tmp/state
control_socket = $tmp/ctl.sock
max_lifetime = 3600
CONF

# -t: a good file passes, a bad one names file:line and exits 1
"$daemon" -t -c "$conf" 2>/dev/null || fail "-t rejects a valid configuration"
printf 'lan_interface = lan0\nwan_interface = wan0\nmax_lifetime = 10\nbogus = 1\n' >"$tmp/bad.conf"
out=$("$daemon" -t -c "$tmp/bad.conf" 2>&1) && fail "-t accepted a bad configuration"
echo "$out" | grep -q "bad.conf:3: " || fail "no file:line for the bad max_lifetime: $out"
echo "$out" | grep -q "bad.conf:4: .*bogus" || fail "no file:line for the unknown key: $out"
# ... and the daemon never starts on it
nsx "$daemon" -f -c "$tmp/bad.conf" >/dev/null 2>&1 && fail "daemon started on a bad configuration"

ip netns exec "$ns" "$daemon" -f -v -c "$conf" >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 50); do [ -S "$tmp/ctl.sock" ] && break; sleep 0.1; done
[ -S "$tmp/ctl.sock" ] || fail "control socket never appeared"
[ "$(stat -c %a "$tmp/ctl.sock")" = 600 ] || fail "control socket mode is not 0600"

json=$(nsx "$ctl" -s "$tmp/ctl.sock" status --json) || fail "status --json failed"
echo "$json" | python3 -c '
import json, sys
s = json.load(sys.stdin)
for k in ("epoch", "external_address", "mappings", "upstream"):
    assert k in s, k
assert s["external_address"] == "198.51.100.2", s
assert s["mappings"] == 0 and s["upstream"] == [], s
assert isinstance(s["epoch"], int)
' || fail "status --json fields: $json"
nsx "$ctl" -s "$tmp/ctl.sock" status | grep -q "external address: 198.51.100.2" ||
	fail "readable status"
[ "$(nsx "$ctl" -s "$tmp/ctl.sock" list --json)" = "[]" ] || fail "list --json of an empty table"
nsx "$ctl" -s "$tmp/ctl.sock" list | grep -q '^PROTO' || fail "readable list header"
out=$(nsx "$ctl" -s "$tmp/ctl.sock" delete tcp 4000 2>&1); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "no such mapping" || fail "delete of nothing: rc $rc, $out"
out=$(nsx "$ctl" -s "$tmp/ctl.sock" delete tcp 0 2>&1); [ $? = 1 ] || fail "delete port 0 accepted: $out"
nsx "$ctl" -s "$tmp/ctl.sock" frobnicate >/dev/null 2>&1; [ $? = 2 ] || fail "unknown command not a usage error"

# the epoch counts seconds (RFC 6887 §8.5)
e1=$(nsx "$ctl" -s "$tmp/ctl.sock" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])')
sleep 2.1
e2=$(nsx "$ctl" -s "$tmp/ctl.sock" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])')
[ $((e2 - e1)) -ge 2 ] && [ $((e2 - e1)) -le 3 ] || fail "epoch went $e1 -> $e2 in 2 s"

# SIGHUP with a broken file: logged with file:line, old configuration kept
cp "$conf" "$tmp/good.conf"
echo "min_lifetime = banana" >>"$conf"
kill -HUP $pid; sleep 0.5
kill -0 $pid 2>/dev/null || fail "daemon died on a bad reload"
grep -q "pcp-iwfd.conf:8: " "$tmp/log" || fail "bad reload not reported with file:line"
grep -q "keeping the running configuration" "$tmp/log" || fail "bad reload not refused"
cp "$tmp/good.conf" "$conf"
kill -HUP $pid; sleep 0.5
grep -q "configuration reloaded" "$tmp/log" || fail "good reload not applied"
nsx "$ctl" -s "$tmp/ctl.sock" status --json >/dev/null || fail "not answering after reload"
# a key the running sockets were opened with: logged, its running value kept
echo "nft_table = other_table" >>"$conf"
kill -HUP $pid; sleep 0.5
grep -q "reload: nft_table changes need a restart; keeping the running value" "$tmp/log" ||
	fail "a restart-only key was not reported: $(tail -3 "$tmp/log")"
nsx "$ctl" -s "$tmp/ctl.sock" status --json >/dev/null || fail "not answering after reload 3"
cp "$tmp/good.conf" "$conf"

# a second daemon must not steal the socket
nsx "$daemon" -f -c "$conf" >"$tmp/log2" 2>&1 && fail "second daemon started"
grep -q "another pcp-iwfd is running" "$tmp/log2" || fail "second daemon: $(cat "$tmp/log2")"
[ -S "$tmp/ctl.sock" ] || fail "second daemon removed the first one's socket"

kill -TERM $pid
for _ in $(seq 50); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
wait $pid; rc=$?; pid=""
[ $rc = 0 ] || fail "SIGTERM exit status $rc"
[ -e "$tmp/ctl.sock" ] && fail "control socket left behind"
echo "PASS: daemon_control"
exit 0
