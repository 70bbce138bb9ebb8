#!/bin/bash
# test_ctl_pcp.sh PCP-IWFCTL - the native PCP client against the scripted
# fake server (fake_pcp_server.py) on loopback: JSON fields, exit statuses
# 0/1/2, RFC 6887 §8.1.1 retransmission (identical packets, doubling RT),
# §8.3 reply matching (decoys ignored, THIRD_PARTY part of the match), -N
# reuse, C-01/C-02/C-09, every documented JSON key in every answer (null
# when it does not apply) and option errors (-F, -D UTF-8, ...). Every wait is bounded; only the server PID started here is killed.
set -u

CTL=${1:?usage: test_ctl_pcp.sh PATH-TO-pcp-iwfctl}
HERE=$(cd "$(dirname "$0")" && pwd)
FAKE="$HERE/fake_pcp_server.py"
TMP=$(mktemp -d /tmp/test_ctl_pcp.XXXXXX)
SPID=
FAILS=0
CHECKS=0

command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

stop_server() {
	if [ -n "$SPID" ]; then
		kill "$SPID" 2>/dev/null
		wait "$SPID" 2>/dev/null
		SPID=
	fi
}

cleanup() {
	stop_server
	rm -rf "$TMP"
}
trap cleanup EXIT

# start_server [--address A] [server options...]: sets PORT and S.
start_server() {
	local addr=127.0.0.1 i
	stop_server
	if [ "${1:-}" = "--address" ]; then
		addr=$2
	fi
	rm -f "$TMP/port" "$TMP/log"
	: >"$TMP/log"
	python3 "$FAKE" --log "$TMP/log" --ready-file "$TMP/port" \
	    --max-time 60 "$@" &
	SPID=$!
	for i in $(seq 50); do
		[ -s "$TMP/port" ] && break
		sleep 0.1
	done
	if [ ! -s "$TMP/port" ]; then
		echo "FATAL: the fake server did not start"
		exit 1
	fi
	PORT=$(cat "$TMP/port")
	case $addr in
	*:*) S="[$addr]:$PORT" ;;
	*) S="$addr:$PORT" ;;
	esac
}

# run ARGS...: pcp-iwfctl with a hard bound; RC, $TMP/out, $TMP/err.
run() {
	timeout 40 "$CTL" "$@" >"$TMP/out" 2>"$TMP/err"
	RC=$?
}

pass() { CHECKS=$((CHECKS + 1)); echo "ok   $1"; }
fail() {
	CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1))
	echo "FAIL $1"
	echo "  exit $RC; stdout:"; sed 's/^/    /' "$TMP/out"
	echo "  stderr:"; sed 's/^/    /' "$TMP/err"
}

expect_rc() {	# DESC RC
	if [ "$RC" -eq "$2" ]; then pass "$1: exit $2"; else fail "$1: exit $2"; fi
}

# jcheck DESC PYEXPR: d = the one JSON object on stdout.
jcheck() {
	if python3 - "$TMP/out" "$2" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    d = json.load(f)         # fails unless stdout is exactly one JSON value
sys.exit(0 if isinstance(d, dict) and eval(sys.argv[2]) else 1)
EOF
	then pass "$1"; else fail "$1: $2"; fi
}

# lcheck DESC PYEXPR: L = the server's log entries (requests received).
lcheck() {
	if python3 - "$TMP/log" "$2" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    L = [json.loads(line) for line in f if line.strip()]
R = [e["request"] for e in L]
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
	then pass "$1"; else fail "$1: $2"; echo "  log:"; sed 's/^/    /' "$TMP/log"; fi
}

# grepcheck DESC FILE REGEX
grepcheck() {
	if LC_ALL=C grep -Eq -- "$3" "$2"; then pass "$1"; else fail "$1: /$3/ in $(basename "$2")"; fi
}

NONCE=0123456789abcdef01234567
# INTERFACE.md "Control client": the keys every JSON answer has
KEYS='("result", "result_code", "epoch", "lifetime", "external_address", "external_port", "nonce", "protocol", "internal_port")'

# --- help and usage ---------------------------------------------------------
run map --help
expect_rc "map --help" 0
grepcheck "map --help prints the usage" "$TMP/out" '^usage: pcp-iwfctl map'
run announce --help
expect_rc "announce --help" 0
run --help
expect_rc "--help" 0
grepcheck "--help lists every command" "$TMP/out" 'delete PROTO EXTPORT'
run
expect_rc "no command" 2
run frobnicate
expect_rc "unknown command" 2

# --- MAP success, JSON ------------------------------------------------------
start_server --ext-addr 203.0.113.1
run map -S "$S" -p tcp -i 6000 -l 300 -w 5 --json
expect_rc "map success" 0
jcheck "map JSON: result" 'd["result"] == "SUCCESS" and d["result_code"] == 0'
jcheck "map JSON: mapping" 'd["protocol"] == "tcp" and d["internal_port"] == 6000 and d["external_address"] == "203.0.113.1" and d["external_port"] == 6000 and d["lifetime"] == 300'
jcheck "map JSON: epoch, opcode, server" 'd["epoch"] >= 1234 and d["opcode"] == "map" and d["server"] == "'"$S"'"'
jcheck "map JSON: internal address (C-01)" 'd["internal_address"] == "127.0.0.1"'
jcheck "map JSON: nonce is 24 lowercase hex" 'len(d["nonce"]) == 24 and all(c in "0123456789abcdef" for c in d["nonce"])'
jcheck "map JSON: every documented key" 'all(k in d and d[k] is not None for k in '"$KEYS"')'
jcheck "map JSON: no options echoed when none sent" '"third_party" not in d and "description" not in d and "prefer_failure" not in d'
NONCE_SEEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nonce"])' "$TMP/out")
lcheck "one MAP request of 60 octets" 'len(R) == 1 and R[0]["opcode"] == 1 and R[0]["length"] == 60'
lcheck "request fields" 'R[0]["protocol"] == 6 and R[0]["internal_port"] == 6000 and R[0]["lifetime"] == 300 and R[0]["ext_port"] == 0'
lcheck "Client IP = source address (C-01)" 'R[0]["client_ip"] == "127.0.0.1" == L[0]["src_addr"]'
lcheck "no suggestion = IPv4 all-zeros ::ffff:0:0 (§11.1)" 'R[0]["ext_addr"] == "0.0.0.0"'
lcheck "the JSON nonce is the one sent" 'R[0]["nonce"] == "'"$NONCE_SEEN"'"'
lcheck "source port is not a PCP port (C-02)" 'L[0]["src_port"] not in (5350, 5351)'

# --- MAP success, readable; default lifetime 7200 ---------------------------
run map -S "$S" -p udp -i 6001 -w 5
expect_rc "map readable" 0
grepcheck "readable first line" "$TMP/out" '^SUCCESS: udp 127\.0\.0\.1:6001 -> 203\.0\.113\.1:6001 lifetime 7200 s \(epoch [0-9]+\)$'
grepcheck "readable nonce line" "$TMP/out" '^nonce [0-9a-f]{24}$'
lcheck "default lifetime 7200, protocol 17" 'R[-1]["lifetime"] == 7200 and R[-1]["protocol"] == 17'

# --- fresh nonce and random source port per run (C-02, §11.2) --------------
for i in 1 2 3; do run map -S "$S" -p tcp -i 6002 -w 5; done
lcheck "three runs: three different nonces" 'len({r["nonce"] for r in R[-3:]}) == 3'
lcheck "three runs: not all from one source port (C-02)" 'len({e["src_port"] for e in L[-3:]}) > 1'

# --- -N reuse, -e/-E suggestion, delete -------------------------------------
run map -S "$S" -p tcp -i 6003 -N 0123456789ABCDEF01234567 -e 7003 -E 203.0.113.1 --json -w 5
expect_rc "map -N" 0
lcheck "-N: the given nonce is sent" 'R[-1]["nonce"] == "'$NONCE'"'
jcheck "-N: JSON nonce in lowercase" 'd["nonce"] == "'$NONCE'"'
lcheck "-e/-E: suggestion sent" 'R[-1]["ext_port"] == 7003 and R[-1]["ext_addr"] == "203.0.113.1"'
jcheck "-e: server granted the suggestion" 'd["external_port"] == 7003'
run map -S "$S" -p tcp -i 6003 -N $NONCE -l 0 --json -w 5
expect_rc "delete with the same nonce" 0
lcheck "delete: lifetime 0, same nonce" 'R[-1]["lifetime"] == 0 and R[-1]["nonce"] == "'$NONCE'"'
jcheck "delete: lifetime 0 in the answer" 'd["lifetime"] == 0'

# --- -I: Client IP field and source address --------------------------------
run map -S "$S" -p tcp -i 6004 -I 127.0.0.2 --json -w 5
expect_rc "map -I 127.0.0.2" 0
lcheck "-I: source and Client IP are 127.0.0.2" 'L[-1]["src_addr"] == "127.0.0.2" and R[-1]["client_ip"] == "127.0.0.2"'
jcheck "-I: internal address" 'd["internal_address"] == "127.0.0.2"'

# --- options echoed: THIRD_PARTY, DESCRIPTION, PREFER_FAILURE ---------------
run map -S "$S" -p tcp -i 6005 -T 192.0.2.55 -D 'game "x"	tab' -F -e 6005 --json -w 5
expect_rc "map with options" 0
lcheck "options sent in the request" '[o["code"] for o in R[-1]["options"]] == [1, 2, 128] and R[-1]["options"][0]["addr"] == "192.0.2.55" and R[-1]["options"][2]["text"] == "game \"x\"\ttab"'
jcheck "JSON: third_party echoed, internal address from it" 'd["third_party"] == "192.0.2.55" and d["internal_address"] == "192.0.2.55"'
jcheck "JSON: description escaped correctly" 'd["description"] == "game \"x\"\ttab"'
jcheck "JSON: prefer_failure echoed" 'd["prefer_failure"] is True and "warning" not in d'
run map -S "$S" -p tcp -i 6005 -T 192.0.2.55 -D 'a"b' -w 5
grepcheck "readable: options listed" "$TMP/out" '^third party 192\.0\.2\.55$'
grepcheck "readable: description quoted" "$TMP/out" '^description "a\\"b"$'

run map -S "$S" -p tcp -i 6005 -D $'caf\xc3\xa9 \xe2\x98\x95' --json -w 5
expect_rc "map -D with UTF-8 text" 0
lcheck "-D: the UTF-8 text is sent as is" 'R[-1]["options"][0]["text"] == "caf\u00e9 \u2615"'
jcheck "-D: the UTF-8 text comes back" 'd["description"] == "caf\u00e9 \u2615"'

# --- §11.4/§12.4: the internal address (THIRD_PARTY's) is part of the match
start_server --decoys --ext-addr 203.0.113.1
run map -S "$S" -p tcp -i 6008 -T 192.0.2.55 --json -w 5 -v
expect_rc "-T: decoys without / with another THIRD_PARTY, then the answer" 0
jcheck "-T: the real answer, not a decoy" 'd["external_address"] == "203.0.113.1" and d["third_party"] == "192.0.2.55" and d["internal_address"] == "192.0.2.55"'
grepcheck "-T: a reply without THIRD_PARTY is ignored" "$TMP/err" 'ignored a reply with no THIRD_PARTY'
grepcheck "-T: a reply with another THIRD_PARTY is ignored" "$TMP/err" 'ignored a reply with another THIRD_PARTY address'
run peer -S "$S" -p tcp -i 6008 -T 192.0.2.55 -r 198.51.100.7:443 --json -w 5 -v
expect_rc "peer -T with decoys" 0
jcheck "peer -T: the real answer" 'd["external_address"] == "203.0.113.1" and d["third_party"] == "192.0.2.55"'
grepcheck "peer -T: a reply without THIRD_PARTY is ignored" "$TMP/err" 'ignored a reply with no THIRD_PARTY'
run map -S "$S" -p tcp -i 6009 --json -w 5 -v
expect_rc "no -T, decoys with a THIRD_PARTY" 0
jcheck "no -T: the real answer" 'd["external_address"] == "203.0.113.1" and "third_party" not in d and d["internal_address"] == "127.0.0.1"'
grepcheck "no -T: a reply with a THIRD_PARTY is ignored" "$TMP/err" 'ignored a reply with a THIRD_PARTY that was not sent'

start_server --third-party none
run map -S "$S" -p tcp -i 6008 -T 192.0.2.55 -w 2
expect_rc "-T: a success without THIRD_PARTY is not the answer" 2
grepcheck "-T, no THIRD_PARTY back: 'no answer'" "$TMP/err" '^pcp-iwfctl: no answer from'
start_server --third-party 192.0.2.77
run map -S "$S" -p tcp -i 6008 -T 192.0.2.55 -w 2
expect_rc "-T: a success for another THIRD_PARTY is not the answer" 2
run map -S "$S" -p tcp -i 6008 -w 2
expect_rc "no -T: a success with a THIRD_PARTY is not the answer" 2
start_server --mode error --result 5 --third-party none
run map -S "$S" -p tcp -i 6008 -T 192.0.2.55 -w 2
expect_rc "-T: an error reply that lost THIRD_PARTY is not the answer" 2
start_server --mode error --result 5
run map -S "$S" -p tcp -i 6008 -T 192.0.2.55 --json -w 5
expect_rc "-T: UNSUPP_OPTION copying the request" 1
jcheck "-T: error JSON for the THIRD_PARTY address" 'd["result"] == "UNSUPP_OPTION" and d["third_party"] == "192.0.2.55" and d["internal_address"] == "192.0.2.55"'

start_server --description-hex '41ff0a42'
run map -S "$S" -p tcp -i 6006 -D x --json -w 5
expect_rc "invalid UTF-8 description from the server" 0
jcheck "JSON stays valid: U+FFFD and an escaped newline" 'd["description"] == "A\ufffd\nB"'
run map -S "$S" -p tcp -i 6006 -D x -w 5
grepcheck "readable: control bytes made visible" "$TMP/out" '^description "A.*\\x0aB"$'

# --- C-09: PREFER_FAILURE success must match the suggestion ---------------
start_server --ext-port 7999
run map -S "$S" -p tcp -i 6007 -e 7007 -F --json -w 5
expect_rc "PREFER_FAILURE, another port granted (C-09)" 1
jcheck "C-09: JSON keeps SUCCESS and carries a warning" 'd["result"] == "SUCCESS" and d["external_port"] == 7999 and "PREFER_FAILURE" in d["warning"]'
grepcheck "C-09: warning on stderr" "$TMP/err" 'warning: PREFER_FAILURE'
run map -S "$S" -p tcp -i 6007 -e 7007 -w 5
expect_rc "without -F another port is fine" 0

# --- error results: exit 1 ---------------------------------------------------
start_server --mode error --result 2 --error-lifetime 1800
run map -S "$S" -p tcp -i 6010 -e 80 --json -w 5
expect_rc "NOT_AUTHORIZED" 1
jcheck "error JSON" 'd["result"] == "NOT_AUTHORIZED" and d["result_code"] == 2 and d["lifetime"] == 1800 and d["internal_port"] == 6010'
run map -S "$S" -p tcp -i 6010 -w 5
expect_rc "NOT_AUTHORIZED readable" 1
grepcheck "readable error line" "$TMP/out" '^NOT_AUTHORIZED: tcp 127\.0\.0\.1:6010 -> .* error lifetime 1800 s'
start_server --mode error --result 11 --error-lifetime 30
run map -S "$S" -p udp -i 6011 -e 6011 -F --json -w 5
expect_rc "CANNOT_PROVIDE_EXTERNAL" 1
jcheck "CANNOT_PROVIDE_EXTERNAL JSON" 'd["result"] == "CANNOT_PROVIDE_EXTERNAL" and d["result_code"] == 11'

# --- NAT-PMP-only server (§9, C-10) -----------------------------------------
start_server --mode natpmp
run map -S "$S" -p tcp -i 6012 --json -w 5
expect_rc "NAT-PMP-only server" 1
jcheck "UNSUPP_VERSION JSON" 'd["result"] == "UNSUPP_VERSION" and d["result_code"] == 1 and d["server_version"] == 0'
jcheck "UNSUPP_VERSION JSON: every documented key, null when not in the reply" 'all(k in d for k in '"$KEYS"') and all(d[k] is None for k in ("epoch", "lifetime", "external_address", "external_port", "nonce", "protocol", "internal_port", "internal_address"))'
run announce -S "$S" --json -w 5
expect_rc "announce to a NAT-PMP-only server" 1
jcheck "announce UNSUPP_VERSION JSON: every documented key" 'all(k in d for k in '"$KEYS"') and d["server_version"] == 0 and d["epoch"] is None and d["nonce"] is None'
grepcheck "NAT-PMP named on stderr" "$TMP/err" 'NAT-PMP'
run announce -S "$S" -w 5
grepcheck "readable UNSUPP_VERSION" "$TMP/out" '^UNSUPP_VERSION: .* version 0.*NAT-PMP'

# --- §8.3: decoys are ignored ------------------------------------------------
start_server --decoys --ext-addr 203.0.113.1 --decoy-addr 198.51.100.99
run map -S "$S" -p tcp -i 6020 --json -w 5 -v
expect_rc "decoys then the answer" 0
jcheck "the real answer, not a decoy" 'd["external_address"] == "203.0.113.1"'
grepcheck "-v: a wrong-nonce reply was seen and ignored" "$TMP/err" 'ignored a reply with another nonce'
run peer -S "$S" -p tcp -i 6021 -r 198.51.100.7:443 --json -w 5
expect_rc "peer with decoys" 0
jcheck "peer JSON" 'd["opcode"] == "peer" and d["remote_address"] == "198.51.100.7" and d["remote_port"] == 443 and d["external_address"] == "203.0.113.1"'
lcheck "PEER request of 80 octets" 'R[-1]["opcode"] == 2 and R[-1]["length"] == 80 and R[-1]["peer_addr"] == "198.51.100.7" and R[-1]["peer_port"] == 443'
run announce -S "$S" --json -w 5
expect_rc "announce with decoys" 0
jcheck "announce JSON" 'd["result"] == "SUCCESS" and d["result_code"] == 0 and d["lifetime"] == 0 and d["epoch"] >= 1234 and d["server"] == "'"$S"'" and d["opcode"] == "announce"'
jcheck "announce JSON: every documented key, the mapping ones null" 'all(k in d for k in '"$KEYS"') and all(d[k] is None for k in ("external_address", "external_port", "nonce", "protocol", "internal_port", "internal_address"))'
lcheck "ANNOUNCE request: 24 octets, lifetime 0" 'R[-1]["opcode"] == 0 and R[-1]["length"] == 24 and R[-1]["lifetime"] == 0'

start_server --mode decoys-only
run map -S "$S" -p tcp -i 6022 --json -w 2
expect_rc "only decoys: no answer" 2
grepcheck "only decoys: 'no answer' message" "$TMP/err" "^pcp-iwfctl: no answer from 127\\.0\\.0\\.1:$PORT within 2 s"
test ! -s "$TMP/out" && pass "only decoys: nothing on stdout" || fail "only decoys: nothing on stdout"

# --- §8.1.1 retransmission ---------------------------------------------------
start_server --drop-first 1
run map -S "$S" -p tcp -i 6030 --json -w 8
expect_rc "answered on the second send" 0
lcheck "two sends, byte-identical (C-03)" 'len(R) == 2 and R[0]["hex"] == R[1]["hex"]'
lcheck "second send after RT = (1+RAND)*3 s" '2.6 <= L[1]["t"] - L[0]["t"] <= 3.6'

start_server --mode silent
run map -S "$S" -p udp -i 6031 -w 12
expect_rc "silent server" 2
grepcheck "'no answer' message" "$TMP/err" "^pcp-iwfctl: no answer from 127\\.0\\.0\\.1:$PORT within 12 s"
lcheck "three identical sends in 12 s" 'len(R) == 3 and R[0]["hex"] == R[1]["hex"] == R[2]["hex"]'
lcheck "RT doubles: gap2/gap1 in [1.8, 2.2] (±jitter)" '1.6 <= (L[2]["t"] - L[1]["t"]) / (L[1]["t"] - L[0]["t"]) <= 2.5'

stop_server
run announce -S 127.0.0.1:9 -w 1
expect_rc "nothing listening" 2
grepcheck "'no answer' names server and wait" "$TMP/err" '^pcp-iwfctl: no answer from 127\.0\.0\.1:9 within 1 s'

# --- IPv6 server -------------------------------------------------------------
if python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))' 2>/dev/null; then
	start_server --address ::1 --ext-addr 2001:db8::1
	run map -S "$S" -p tcp -i 6040 --json -w 5
	expect_rc "IPv6 server" 0
	jcheck "IPv6: addresses" 'd["internal_address"] == "::1" and d["external_address"] == "2001:db8::1" and d["server"] == "'"$S"'"'
	lcheck "IPv6: Client IP ::1, no suggestion = ::" 'R[-1]["client_ip"] == "::1" and R[-1]["ext_addr"] == "::"'
	run peer -S "$S" -p tcp -i 6041 -r 192.0.2.1:80 -w 5
	expect_rc "IPv6 client, IPv4 peer: family mismatch" 2
else
	echo "skip IPv6 part: no ::1"
fi
stop_server

# --- bad options: exit 2, message naming the option ------------------------
bad() {	# NEEDLE ARGS...: exit 2 and NEEDLE on stderr
	local needle=$1 label
	shift
	label=$(printf '%s' "$*" | LC_ALL=C tr -c '[:print:]' '?')
	[ ${#label} -gt 80 ] && label="${label:0:80}..."
	run "$@"
	if [ "$RC" -eq 2 ] && grep -qF -- "$needle" "$TMP/err"; then
		pass "bad option: $label -> exit 2, '$needle'"
	else
		fail "bad option: $label -> exit 2, '$needle'"
	fi
}
Z=127.0.0.1:9
bad "-p" map -S $Z -p sctpx -i 1
bad "-p" map -S $Z -p 256 -i 1
bad "-i" map -S $Z -p tcp -i 65536
bad "-i" map -S $Z -p tcp -i -1
bad "-i" map -S $Z -p tcp -i 12x
bad "-i" map -S $Z -p tcp -i ' 12'
bad "-i" map -S $Z -p tcp -i ''
bad "-e" map -S $Z -p tcp -i 1 -e 99999
bad "-l" map -S $Z -p tcp -i 1 -l 4294967296
bad "-l" map -S $Z -p tcp -i 1 -l -5
bad "-N" map -S $Z -p tcp -i 1 -N 0123
bad "-N" map -S $Z -p tcp -i 1 -N 0123456789abcdef0123456z
bad "-N" map -S $Z -p tcp -i 1 -N 0123456789abcdef012345678
bad "-w" map -S $Z -p tcp -i 1 -w 0
bad "-w" map -S $Z -p tcp -i 1 -w 1.5
bad "-S" map -S not.an.address -p tcp -i 1
bad "-S" map -S 127.0.0.1:0 -p tcp -i 1
bad "-S" map -S 127.0.0.1:65536 -p tcp -i 1
bad "-S" map -S '[::1' -p tcp -i 1
bad "-S SERVER is required" map -p tcp -i 1
bad "-E" map -S $Z -p tcp -i 1 -E 300.1.1.1
bad "-T" map -S $Z -p tcp -i 1 -T nowhere
bad "-I" map -S $Z -p tcp -i 1 -I nowhere
bad "-I and -S" map -S $Z -p tcp -i 1 -I ::1
bad "-D" map -S $Z -p tcp -i 1 -D "$(head -c 1017 /dev/zero | tr '\0' x)"
# RFC 7220 §3: UTF-8 only (a bad octet, an overlong '/', a surrogate, a cut one)
bad "-D: the description is not valid UTF-8" map -S $Z -w 1 -p tcp -i 1 -D $'a\xffb'
bad "-D: the description is not valid UTF-8" map -S $Z -w 1 -p tcp -i 1 -D $'a\xc0\xafb'
bad "-D: the description is not valid UTF-8" peer -S $Z -w 1 -p tcp -i 1 -r 192.0.2.1:80 -D $'\xed\xa0\x80'
bad "-D: the description is not valid UTF-8" map -S $Z -w 1 -p tcp -i 1 -D $'caf\xc3'
# RFC 6887 §13.2: PREFER_FAILURE is MAP only, needs a suggested port, no delete
bad "-F does not apply to peer" peer -S $Z -w 1 -p tcp -i 1 -r 192.0.2.1:80 -F
bad "-F needs a non-zero suggested external port" map -S $Z -w 1 -p tcp -i 1 -F
bad "-F needs a non-zero suggested external port" map -S $Z -w 1 -p tcp -i 1 -F -e 0
bad "-F cannot be used with -l 0" map -S $Z -w 1 -p tcp -i 1 -e 80 -F -l 0
bad "-p PROTO and -i" map -S $Z -i 1
bad "-i must be 0" map -S $Z -p 0 -i 80
bad "-r" peer -S $Z -p tcp -i 1
bad "-r" peer -S $Z -p tcp -i 1 -r 192.0.2.1
bad "-r" peer -S $Z -p tcp -i 1 -r 192.0.2.1:0
bad "non-zero" peer -S $Z -p tcp -i 0 -r 192.0.2.1:80
bad "-r does not apply" map -S $Z -p tcp -i 1 -r 192.0.2.1:80
bad "-p does not apply" announce -S $Z -p tcp
bad "-S needs a value" map -p tcp -i 1 -S
bad "unknown option" map -S $Z -p tcp -i 1 --bogus
bad "unexpected argument" map -S $Z -p tcp -i 1 extra

# too long: 60 + THIRD_PARTY 20 + PREFER_FAILURE 4 + DESCRIPTION 1020 > 1100
bad "does not fit" map -S $Z -p tcp -i 1 -e 1 -F -T 192.0.2.1 -D "$(head -c 1016 /dev/zero | tr '\0' x)"

echo "$((CHECKS - FAILS))/$CHECKS checks passed"
[ "$FAILS" -eq 0 ]
