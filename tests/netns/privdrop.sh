#!/bin/bash
# privdrop.sh BUILD_DIR [normal|sanitize] - least privilege (issue 8, docs/security.md) with
# the real daemon (PCP, NAT-PMP, UPnP IGD: pupnp's threads) and the real carrier (miniupnpd)
# in the lab of scripts/lab.sh:
#
#   1. start-up refuses a missing user and a state directory the user cannot write, each
#      with a message naming it and the fix;
#   2. after setup, /proc/PID/status of the daemon AND of every thread: Uid and Gid are
#      pcp-iwfd's in all four columns, no supplementary groups, CapEff and CapPrm are
#      exactly CAP_NET_ADMIN (0000000000001000), CapBnd the same, CapInh and CapAmb 0,
#      NoNewPrivs 1, Seccomp 2 (0 only in a sanitizer build: the second argument, from
#      CMake); the state directory it made is the user's, mode 0700;
#   3. it still works unprivileged: a PCP MAP from the LAN host (pcp-iwfctl) and a NAT-PMP
#      mapping (natpmpc) are granted through the carrier and their nft elements appear;
#      a SIGHUP reload works (and the threads are still unprivileged after it);
#   4. no DNS (spec/iwf.md X-05, src/nodns.c): a request line with an absolute URI naming a
#      host (GET http://name/...) and a SUBSCRIBE whose CALLBACK names a host, sent by the
#      LAN host to pupnp's port, do not end the daemon (glibc's resolver would poll(2),
#      which the filter does not allow): it runs on, serves its description, no seccomp
#      kill in the log;
#   5. SIGTERM: exit 0 with the state saved; a restart brings the mappings back, again
#      unprivileged.
# Exit: 0 pass, 1 fail, 77 skip.

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$here/../../scripts/lab.sh"

build="${1:-}"
kind="${2:-normal}"
daemon="$build/pcp-iwfd"
ctl="$build/pcp-iwfctl"
if [ -z "$build" ] || [ ! -x "$daemon" ] || [ ! -x "$ctl" ]; then
	echo "SKIP: no pcp-iwfd / pcp-iwfctl in build directory '${build}'" >&2
	exit 77
fi
lab_skip_unless_ready natpmpc
lab_hard_timeout 120 "$0" "$@"

user=$LAB_DAEMON_USER
uid=$(id -u "$user")
gid=$(id -g "$user")
# CAP_NET_ADMIN is capability 12
net_admin=0000000000001000
none=0000000000000000
want_seccomp=2
[ "$kind" = sanitize ] && want_seccomp=0
table=pcp_iwfd
PCP_PORT=46000
NATPMP_PORT=46001

gwctl() { lab_exec gw "$ctl" -s "$LAB_TMP/ctl.sock" "$@"; }
gw_list() {
	gwctl list --json | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    print(m["protocol"], m["internal_port"], m["external_port"])' | sort
}
# PROTO PORT: the gateway's nft map has an element for it (numeric with -p:
# "6 . 46000 timeout 11m expires ... : 192.0.2.10 . 46000")
nft_has_port() {
	local p=6
	[ "$1" = udp ] && p=17
	lab_exec gw nft -p list map ip "$table" dnat_ports 2>/dev/null |
		grep -Eq "(^|[ {,])$p \. $2 "
}
# status FILE KEY: the value of one line of a /proc status file, tabs as spaces
status_of() { sed -n "s/^$2:[[:space:]]*//p" "$1" | tr -s '\t' ' '; }

# check_status FILE WHAT: every privilege field of one status file
check_status() {
	local f="$1" what="$2" bad=""
	[ "$(status_of "$f" Uid)" = "$uid $uid $uid $uid" ] || bad="$bad Uid=$(status_of "$f" Uid)"
	[ "$(status_of "$f" Gid)" = "$gid $gid $gid $gid" ] || bad="$bad Gid=$(status_of "$f" Gid)"
	[ -z "$(status_of "$f" Groups)" ] || bad="$bad Groups=$(status_of "$f" Groups)"
	[ "$(status_of "$f" CapEff)" = $net_admin ] || bad="$bad CapEff=$(status_of "$f" CapEff)"
	[ "$(status_of "$f" CapPrm)" = $net_admin ] || bad="$bad CapPrm=$(status_of "$f" CapPrm)"
	[ "$(status_of "$f" CapBnd)" = $net_admin ] || bad="$bad CapBnd=$(status_of "$f" CapBnd)"
	[ "$(status_of "$f" CapInh)" = $none ] || bad="$bad CapInh=$(status_of "$f" CapInh)"
	[ "$(status_of "$f" CapAmb)" = $none ] || bad="$bad CapAmb=$(status_of "$f" CapAmb)"
	[ "$(status_of "$f" NoNewPrivs)" = 1 ] || bad="$bad NoNewPrivs=$(status_of "$f" NoNewPrivs)"
	[ "$(status_of "$f" Seccomp)" = $want_seccomp ] || bad="$bad Seccomp=$(status_of "$f" Seccomp)"
	[ -z "$bad" ] && return 0
	echo "  $what:$bad"
	return 1
}
# every thread of PID: its count in $LAB_TMP/threads
check_threads() {
	local pid="$1" t n=0 bad=0
	for t in /proc/"$pid"/task/*/status; do
		n=$((n + 1))
		check_status "$t" "thread ${t#/proc/"$pid"/task/}" || bad=1
	done
	echo "$n" >"$LAB_TMP/threads"
	return $bad
}

lab_up || exit 1
lab_start_carrier || { echo "FAIL - the carrier (miniupnpd) did not start"; exit 1; }

# the state directory does not exist: the daemon makes it and gives it to its user
statedir="$LAB_TMP/var"
conf="$LAB_TMP/pcp-iwfd.conf"
write_conf() { # STATE_FILE [EXTRA LINE]
	cat >"$conf" <<-EOF
	lan_interface = $LAB_GW_LAN_IF
	wan_interface = $LAB_GW_WAN_IF
	upstream_server = $LAB_CGN_IP
	nft_table = $table
	upnp = yes
	natpmp = yes
	pcp = yes
	state_file = $1
	control_socket = $LAB_TMP/ctl.sock
	${2:-}
	EOF
}

lab_say "1. start-up refuses what the user could not live with"
write_conf "$LAB_TMP/x/state" "user = no-such-user-iwfd"
lab_exec gw timeout 20 "$daemon" -f -c "$conf" >"$LAB_TMP/nouser.log" 2>&1
rc=$?
sed 's/^/  /' "$LAB_TMP/nouser.log" | grep -i user | head -2
lab_check "a missing user: exit 1, naming the user and useradd" \
	eval "[ $rc = 1 ] && grep -q 'user no-such-user-iwfd does not exist: create it (useradd' '$LAB_TMP/nouser.log'"
mkdir -m 0700 "$LAB_TMP/rootdir"
write_conf "$LAB_TMP/rootdir/state"
lab_exec gw timeout 20 "$daemon" -f -c "$conf" >"$LAB_TMP/rootdir.log" 2>&1
rc=$?
sed 's/^/  /' "$LAB_TMP/rootdir.log" | grep "state directory" | head -1
lab_check "a root directory it did not make: exit 1, naming it and the chown" \
	eval "[ $rc = 1 ] && grep -q 'state directory $LAB_TMP/rootdir: user $user cannot write it.*chown $user $LAB_TMP/rootdir' '$LAB_TMP/rootdir.log'"
lab_check "... and it was not chowned" [ "$(stat -c %U "$LAB_TMP/rootdir")" = root ]

write_conf "$statedir/state"
lab_say "2. pcp-iwfd on the gateway: UPnP IGD, NAT-PMP, PCP; nat = local"
sed 's/^/    /' "$conf"
# start_daemon NAME: pcp-iwfd -f with its log in pcp-iwfd-NAME.log; sets daemon_pid
start_daemon() {
	log="$LAB_TMP/pcp-iwfd-$1.log"
	# shellcheck disable=SC2046 # lab_upnp_env: pupnp's own leak suppressed in an ASan build
	lab_bg gw "$log" env $(lab_upnp_env) "$daemon" -f -v -c "$conf"
	daemon_pid=$LAB_LAST_PID
	if ! lab_wait_for "grep -q 'upnp: IGD:.*control http' '$log'" 15; then
		tail -30 "$log"
		echo "FAIL - the daemon did not start its IGD ($1)"
		exit 1
	fi
}
start_daemon first
grep -E "privileges dropped|seccomp|state directory" "$log" | sed 's/^/  /'
lab_check "the daemon's process: $user ($uid:$gid), CAP_NET_ADMIN only, NoNewPrivs, Seccomp $want_seccomp" \
	check_status "/proc/$daemon_pid/status" "the process"
lab_check "every thread the same (pupnp's too)" check_threads "$daemon_pid"
echo "  $(cat "$LAB_TMP/threads") threads"
lab_check "... and there are pupnp threads" [ "$(cat "$LAB_TMP/threads")" -gt 1 ]
lab_check "the state directory it made is $user's, mode 0700" \
	[ "$(stat -c '%U %a' "$statedir")" = "$user 700" ]
lab_check "the state file is $user's" [ "$(stat -c %U "$statedir/state")" = "$user" ]
lab_check "the control socket is root's, mode 0600" \
	[ "$(stat -c '%U %a' "$LAB_TMP/ctl.sock")" = "root 600" ]

lab_say "3. it still works unprivileged"
lab_exec lan "$ctl" map -S "$LAB_GW_LAN_IP" -p tcp -i $PCP_PORT -e $PCP_PORT -l 600 -w 10 \
	>"$LAB_TMP/pcp.out" 2>&1
rc=$?
sed 's/^/  /' "$LAB_TMP/pcp.out" | head -4
# RFC 6887 §15: a refresh names the mapping's nonce
nonce=$(sed -n 's/^nonce //p' "$LAB_TMP/pcp.out")
lab_check "a PCP MAP from the LAN host succeeds (exit 0)" [ "$rc" = 0 ]
lab_exec lan timeout 20 natpmpc -g "$LAB_GW_LAN_IP" -a $NATPMP_PORT $NATPMP_PORT udp 600 \
	>"$LAB_TMP/natpmp.out" 2>&1
lab_check "a NAT-PMP mapping from the LAN host succeeds" \
	grep -q "Mapped public port" "$LAB_TMP/natpmp.out"
lab_check "the nft map has the PCP mapping's element (CAP_NET_ADMIN at work)" \
	lab_wait_for "nft_has_port tcp $PCP_PORT" 5
lab_check "... and the NAT-PMP one's" lab_wait_for "nft_has_port udp $NATPMP_PORT" 5
gw_list >"$LAB_TMP/before"
lab_check "the gateway lists both" [ "$(wc -l <"$LAB_TMP/before")" = 2 ]

write_conf "$statedir/state" "max_lifetime = 7200"
kill -HUP "$daemon_pid"
lab_check "SIGHUP: the configuration is reloaded" \
	lab_wait_for "grep -q 'configuration reloaded from' '$log'" 5
lab_check "... the daemon runs on, its threads still unprivileged" \
	eval "lab_alive $daemon_pid && check_threads $daemon_pid"
lab_exec lan "$ctl" map -S "$LAB_GW_LAN_IP" -p tcp -i $PCP_PORT -e $PCP_PORT -N "$nonce" \
	-l 600 -w 10 >"$LAB_TMP/refresh.out" 2>&1
rc=$?
sed 's/^/  /' "$LAB_TMP/refresh.out" | head -1
lab_check "... and a PCP refresh after the reload succeeds" [ "$rc" = 0 ]

lab_say "4. no DNS: host names in pupnp's request line and in a GENA CALLBACK"
desc=$(sed -n 's/.*description \(http[^ ,]*\).*/\1/p' "$log" | head -1)
echo "  description $desc"
# pupnp's answers do not matter (an error): only that the daemon lives and serves on
lab_exec lan python3 - "$desc" >"$LAB_TMP/nodns.out" 2>&1 <<'EOP'
import re, socket, sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
host, port, path = u.hostname, u.port, u.path
def ask(req):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(req.encode())
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    s.close()
    return data.decode("latin-1")
def first(a):
    return a.split("\r\n", 1)[0]
hp = "%s:%d" % (host, port)
print("GET absolute URI:", first(ask("GET http://no-such-host-privdrop.invalid%s HTTP/1.1\r\n"
      "Host: %s\r\nConnection: close\r\n\r\n" % (path, hp))))
desc = ask("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, hp))
m = re.search(r"WANIPConn1</serviceId>.*?<eventSubURL>([^<]+)</eventSubURL>", desc, re.S)
if not m:
    print("no eventSubURL of WANIPConn1 in the description")
    sys.exit(1)
print("SUBSCRIBE %s:" % m.group(1), first(ask("SUBSCRIBE %s HTTP/1.1\r\nHost: %s\r\n"
      "CALLBACK: <http://no-such-host-privdrop.invalid:5000/cb>\r\nNT: upnp:event\r\n"
      "TIMEOUT: Second-300\r\nConnection: close\r\n\r\n" % (m.group(1), hp))))
after = ask("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, hp))
print("description after:", first(after))
sys.exit(0 if first(after).endswith("200 OK") and "InternetGatewayDevice" in after else 2)
EOP
rc=$?
sed 's/^/  /' "$LAB_TMP/nodns.out"
lab_check "the description is served after both (the daemon answered)" [ "$rc" = 0 ]
lab_check "... the daemon runs on" eval "sleep 1; lab_alive $daemon_pid"
lab_check "... no seccomp kill in the log" eval "! grep -q 'seccomp: system call' '$log'"

lab_say "5. SIGTERM, then a restart"
kill -TERM "$daemon_pid"
wait "$daemon_pid"
rc=$?
lab_check "SIGTERM: exit 0" [ "$rc" = 0 ]
lab_check "... with the state saved (2 mappings kept)" \
	grep -q "state saved to $statedir/state: 2 mapping(s) kept" "$log"
lab_check "no seccomp kill in the log" eval "! grep -q 'seccomp: system call' '$log'"
start_daemon second
lab_check "after the restart: the mappings are back" \
	lab_wait_for "[ \"\$(gw_list)\" = \"\$(cat '$LAB_TMP/before')\" ]" 10
lab_check "... their nft elements too" eval "nft_has_port tcp $PCP_PORT && nft_has_port udp $NATPMP_PORT"
lab_check "... again as $user with CAP_NET_ADMIN only, every thread" check_threads "$daemon_pid"
kill -TERM "$daemon_pid"
wait "$daemon_pid"
lab_check "the second SIGTERM: exit 0" [ $? = 0 ]
lab_check "no seccomp kill, no sanitizer report in the logs" \
	eval "! grep -q 'seccomp: system call\|AddressSanitizer\|LeakSanitizer\|runtime error:' '$LAB_TMP'/pcp-iwfd-*.log"

if [ "$LAB_FAILS" -ne 0 ]; then
	for f in "$LAB_TMP"/pcp-iwfd-*.log; do
		echo "--- $f (last 40 lines)"
		tail -40 "$f"
	done
	echo "FAIL - $LAB_FAILS check(s) failed"
	exit 1
fi
echo "PASS - privdrop ($kind build)"
exit 0
