# shellcheck shell=bash disable=SC2015
# lab.sh: a network-namespace lab with a real carrier PCP server.
#
# Source it from bash; sourcing only defines functions and defaults, it starts nothing.
#
#   lan (LAN host) --- gw (home gateway: pcp-iwfd runs here) --- cgn (carrier: miniupnpd
#   speaks NAT-PMP/PCP and NATs) --- inet (internet host: STUN server, test peers)
#
# Addresses come from the RFC 5737 documentation ranges only:
#   LAN             192.0.2.0/24     lan 192.0.2.10    gw lan0 192.0.2.1
#   CGN inside      198.51.100.0/24  gw wan0 198.51.100.2   cgn in0 198.51.100.1
#   internet        203.0.113.0/24   cgn out0 203.0.113.1   inet 203.0.113.100 (+ .101)
#
# miniupnpd 2.3.x treats every documentation range as "reserved" (getifaddr.c
# addr_is_reserved) and refuses ext_ip= with such an address, so it learns its external
# address with STUN (ext_perform_stun) from a small RFC 5389/5780 STUN responder that runs
# in the inet namespace on two addresses and two ports: miniupnpd sends the four
# CHANGE-REQUEST probes of RFC 5780 §4.3 and enables port forwarding only when all four
# answers arrive unchanged (upnpstun.c perform_stun).
#
# Functions:
#   lab_up                   create the four namespaces (installs lab_down as EXIT trap);
#                            LAB_TMP belongs to LAB_DAEMON_USER (pcp-iwfd), whose daemon
#                            writes its state file there after dropping root
#   lab_start_carrier        nft tables + STUN server + miniupnpd in cgn; waits until it answers
#   lab_stop_carrier         stop miniupnpd, flush its rules (a carrier reboot loses state)
#   lab_add_lan_host [IP]    a second LAN host "lan2" (default 192.0.2.11) on gw interface lan1
#   lab_down                 kill what the lab started, delete its namespaces (idempotent)
#   lab_exec NS CMD...       run CMD in namespace NS (lan|gw|cgn|inet or a full name)
#   lab_show CMD...          print "+ CMD..." (lab_exec is shown as ip netns exec NS)
#   lab_log CMD...           lab_show CMD, then run it
#   lab_say TEXT...          print one sentence of the story
#   lab_wait_for COND SECS   poll the shell command COND every 0.1 s until it succeeds
#   lab_bg NS OUTFILE CMD... start CMD in NS in the background, tracked; sets LAB_LAST_PID
#   lab_kill PID             stop one tracked process
#   lab_listen NS tcp|udp PORT OUTFILE   a one-shot nc listener (tracked), waits until bound
#   lab_send NS tcp|udp ADDR PORT TEXT   send TEXT with nc
#   lab_reach FROM PROTO ADDR PORT TO IPORT        a line sent to ADDR:PORT arrives at TO:IPORT
#   lab_unreachable FROM PROTO ADDR PORT TO IPORT  ... and its opposite
#   lab_check DESC CMD...    run CMD, print "ok - DESC" or "FAIL - DESC", count LAB_FAILS
#   lab_skip_unless_ready [TOOL...]  exit 77 with a reason unless root and the tools are there
#   lab_hard_timeout SECS "$0" "$@"   re-exec the calling script under timeout(1)
#
# Knobs (environment): LAB_PREFIX (default iwfd$$), LAB_GW_NAT=local|none (masquerade the
# LAN on gw; default local), LAB_CARRIER_DEBUG=1 (run miniupnpd -d, log to
# $LAB_TMP/miniupnpd.log), LAB_KEEP_TMP=1 (keep $LAB_TMP after lab_down),
# LAB_CARRIER_MIN_LIFETIME / LAB_CARRIER_MAX_LIFETIME (miniupnpd: min can only go below 120).

LAB_LAN_HOST_IP=192.0.2.10
LAB_GW_LAN_IP=192.0.2.1
LAB_LAN_NET=192.0.2.0/24
LAB_GW_WAN_IP=198.51.100.2
LAB_CGN_IP=198.51.100.1
LAB_CGN_INSIDE_NET=198.51.100.0/24
LAB_CGN_EXT_IP=203.0.113.1
LAB_INET_IP=203.0.113.100
LAB_INET_ALT_IP=203.0.113.101
LAB_STUN_PORT=3478
# interface names live inside their namespace, so they need no per-run prefix
LAB_LAN_IF=eth0
LAB_GW_LAN_IF=lan0
LAB_GW_WAN_IF=wan0
LAB_CGN_IN_IF=in0
LAB_CGN_OUT_IF=out0
LAB_INET_IF=eth0
# the carrier's nftables table; miniupnpd's own chains live in it
LAB_CGN_NFT_TABLE=miniupnpd
# pcp-iwfd's `user` (default): it owns LAB_TMP, where the tests put the state file
LAB_DAEMON_USER=pcp-iwfd

LAB_NS_LAN=""
LAB_NS_LAN2=""
LAB_LAN2_HOST_IP=192.0.2.11
LAB_GW_LAN2_IF=lan1
LAB_NS_GW=""
LAB_NS_CGN=""
LAB_NS_INET=""
LAB_TMP=""
LAB_PIDS=""
LAB_LAST_PID=""
LAB_CARRIER_PID=""
LAB_STUN_PID=""

export LAB_LAN_HOST_IP LAB_GW_LAN_IP LAB_GW_WAN_IP LAB_CGN_IP LAB_CGN_EXT_IP LAB_INET_IP
export LAB_INET_ALT_IP LAB_LAN_NET LAB_CGN_INSIDE_NET LAB_GW_LAN_IF LAB_GW_WAN_IF

lab_say() {
	printf '\n== %s\n' "$*"
}

lab_err() {
	printf 'lab: %s\n' "$*" >&2
}

# The full name of a namespace: lan|gw|cgn|inet map to this run's namespaces.
lab_ns() {
	case "$1" in
	lan) printf '%s\n' "$LAB_NS_LAN" ;;
	lan2) printf '%s\n' "$LAB_NS_LAN2" ;;
	gw) printf '%s\n' "$LAB_NS_GW" ;;
	cgn) printf '%s\n' "$LAB_NS_CGN" ;;
	inet) printf '%s\n' "$LAB_NS_INET" ;;
	*) printf '%s\n' "$1" ;;
	esac
}

lab_exec() {
	local ns
	ns=$(lab_ns "$1") || return 2
	shift
	ip netns exec "$ns" "$@"
}

# Print a command the way a reader can paste it ("+ ip netns exec NS ..." for lab_exec).
lab_show() {
	if [ "$1" = lab_exec ]; then
		printf '+ ip netns exec %s%s\n' "$(lab_ns "$2")" "$(printf ' %q' "${@:3}")"
	else
		printf '+%s\n' "$(printf ' %q' "$@")"
	fi
}

# Print a command, then run it.
lab_log() {
	lab_show "$@"
	"$@"
}

lab_wait_for() {
	local cond="$1" timeout="${2:-10}" tries
	tries=$((timeout * 10))
	while [ "$tries" -gt 0 ]; do
		if eval "$cond" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
		tries=$((tries - 1))
	done
	return 1
}

# One assertion of a test: prints "ok - DESC" or "FAIL - DESC" and counts failures.
LAB_FAILS=0
lab_check() {
	local desc="$1"
	shift
	if "$@"; then
		printf 'ok - %s\n' "$desc"
		return 0
	fi
	printf 'FAIL - %s\n' "$desc"
	LAB_FAILS=$((LAB_FAILS + 1))
	return 1
}

# Re-exec the calling script under timeout(1), once: timeout keeps our pid, so the re-run
# script sees it as its parent and knows it is already bounded.
lab_hard_timeout() {
	local secs="$1"
	shift
	if [ "${LAB_UNDER_TIMEOUT:-}" != "$PPID" ]; then
		export LAB_UNDER_TIMEOUT=$$
		exec timeout -k 10 "$secs" "$@"
	fi
}

# exit 77 (ctest SKIP) with a reason unless we can build a lab here.
lab_skip_unless_ready() {
	local tool
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: netns lab needs root" >&2
		exit 77
	fi
	if ! id -u "$LAB_DAEMON_USER" >/dev/null 2>&1; then
		echo "SKIP: no user $LAB_DAEMON_USER for pcp-iwfd (scripts/install-deps creates it)" >&2
		exit 77
	fi
	for tool in ip nft nc python3 timeout ss /usr/sbin/miniupnpd "$@"; do
		if ! command -v "$tool" >/dev/null 2>&1; then
			echo "SKIP: $tool not installed (scripts/install-deps installs it)" >&2
			exit 77
		fi
	done
	if ! ip netns add "iwfd$$-probe" 2>/dev/null; then
		echo "SKIP: cannot create network namespaces here" >&2
		exit 77
	fi
	ip netns del "iwfd$$-probe"
}

lab_bg() {
	local ns out
	ns=$(lab_ns "$1")
	out="$2"
	shift 2
	ip netns exec "$ns" "$@" >"$out" 2>&1 </dev/null &
	LAB_LAST_PID=$!
	LAB_PIDS="$LAB_PIDS $LAB_LAST_PID"
}

# A process that still runs (a zombie waiting to be reaped does not count).
lab_alive() {
	kill -0 "$1" 2>/dev/null && ! ps -o stat= -p "$1" 2>/dev/null | grep -q Z
}

# Stop a process the lab started: TERM, up to 3 s, then KILL; forget it.
lab_kill() {
	local pid="$1" tries=30 p kept=""
	[ -n "$pid" ] || return 0
	if lab_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		while [ "$tries" -gt 0 ] && lab_alive "$pid"; do
			sleep 0.1
			tries=$((tries - 1))
		done
		lab_alive "$pid" && kill -KILL "$pid" 2>/dev/null
	fi
	# reap it when it is our child (a daemonized miniupnpd is not)
	wait "$pid" 2>/dev/null
	for p in $LAB_PIDS; do
		[ "$p" = "$pid" ] || kept="$kept $p"
	done
	LAB_PIDS=$kept
	return 0
}

lab_port_bound() {
	local ns="$1" proto="$2" port="$3" flag=-ltn
	[ "$proto" = udp ] && flag=-lun
	lab_exec "$ns" ss -H "$flag" "sport = :$port" | grep -q .
}

lab_listen() {
	local ns="$1" proto="$2" port="$3" out="$4"
	if [ "$proto" = udp ]; then
		lab_bg "$ns" "$out" nc -d -u -l -W 1 "$port"
	else
		lab_bg "$ns" "$out" nc -d -l "$port"
	fi
	lab_wait_for "lab_port_bound $ns $proto $port" 5
}

lab_send() {
	local ns="$1" proto="$2" addr="$3" port="$4" text="$5"
	if [ "$proto" = udp ]; then
		printf '%s\n' "$text" | lab_exec "$ns" timeout 5 nc -u -w 1 "$addr" "$port"
	else
		printf '%s\n' "$text" | lab_exec "$ns" timeout 5 nc -N -w 3 "$addr" "$port"
	fi
}

# lab_reach_diag PROTO: what the NATs hold, printed when traffic that should have arrived
# did not: the DNAT rules and map elements of every nft table of gw and cgn, and their
# conntrack entries of PROTO.
lab_reach_diag() {
	local ns
	for ns in gw cgn; do
		echo "    --- $ns: nft (dnat, map elements)"
		lab_exec "$ns" nft list ruleset 2>&1 | grep -E 'dnat|:|elements' | head -40 |
			sed 's/^/    /'
		echo "    --- $ns: conntrack ($1)"
		lab_exec "$ns" cat /proc/net/nf_conntrack 2>&1 | grep -w "$1" | head -20 |
			sed 's/^/    /'
	done
}

# lab_reach FROM PROTO ADDR PORT TO IPORT: a line FROM sends to ADDR:PORT arrives at a
# listener on TO's IPORT within 3 s. One more line is sent when the first does not
# arrive (on a loaded machine a single lost SYN costs nc's whole -w budget); that miss is
# printed as a NOTE with what the two NATs hold, so a run that needed it says so.
# Returns 1 when neither arrived.
lab_reach() {
	local from=$1 proto=$2 addr=$3 port=$4 to=$5 iport=$6 try out pid="" text said
	for try in 1 2; do
		text="reach-$try-$RANDOM$RANDOM"
		# the one-shot listener is still there when nothing reached it
		if [ -z "$pid" ] || ! lab_alive "$pid"; then
			out="$LAB_TMP/recv.$RANDOM$RANDOM"
			lab_listen "$to" "$proto" "$iport" "$out" || return 1
			pid=$LAB_LAST_PID
		fi
		said=$(lab_send "$from" "$proto" "$addr" "$port" "$text" 2>&1)
		if lab_wait_for "grep -q '$text' '$out'" 3; then
			lab_kill "$pid"
			return 0
		fi
		echo "    NOTE: attempt $try: $proto $from -> $addr:$port did not reach $to:$iport in 3 s${said:+ (nc: $said)}"
		lab_reach_diag "$proto"
	done
	lab_kill "$pid"
	return 1
}

# lab_unreachable FROM PROTO ADDR PORT TO IPORT: nothing FROM sends to ADDR:PORT arrives
# at a listener on TO's IPORT within 3 s.
lab_unreachable() {
	local from=$1 proto=$2 addr=$3 port=$4 to=$5 iport=$6 out text pid rc=0
	text="unreachable-$RANDOM$RANDOM"
	out="$LAB_TMP/recv.$RANDOM$RANDOM"
	lab_listen "$to" "$proto" "$iport" "$out" || return 1
	pid=$LAB_LAST_PID
	lab_send "$from" "$proto" "$addr" "$port" "$text" >/dev/null 2>&1
	lab_wait_for "grep -q '$text' '$out'" 3 && rc=1
	lab_kill "$pid"
	return $rc
}

lab_link() {
	# a veth pair created directly inside the two namespaces: nothing appears in the
	# root namespace, so overlapping runs cannot collide on interface names
	ip -n "$1" link add "$2" type veth peer name "$4" netns "$3" || return 1
	ip -n "$1" link set "$2" up && ip -n "$3" link set "$4" up
}

lab_up() {
	local ns
	if [ -n "$LAB_NS_GW" ]; then
		lab_err "lab_up: lab already up ($LAB_NS_GW)"
		return 1
	fi
	LAB_PREFIX="${LAB_PREFIX:-iwfd$$}"
	LAB_NS_LAN="$LAB_PREFIX-lan"
	LAB_NS_GW="$LAB_PREFIX-gw"
	LAB_NS_CGN="$LAB_PREFIX-cgn"
	LAB_NS_INET="$LAB_PREFIX-inet"
	export LAB_NS_LAN LAB_NS_GW LAB_NS_CGN LAB_NS_INET
	trap lab_down EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	LAB_TMP=$(mktemp -d "/tmp/$LAB_PREFIX-lab.XXXXXX") || return 1
	export LAB_TMP
	# pcp-iwfd writes its state file here after dropping root (docs/security.md):
	# the lab's run directory is its user's (root still writes anything in it)
	chown "$LAB_DAEMON_USER:" "$LAB_TMP" || return 1

	for ns in "$LAB_NS_LAN" "$LAB_NS_GW" "$LAB_NS_CGN" "$LAB_NS_INET"; do
		ip netns add "$ns" || { lab_err "cannot create namespace $ns"; return 1; }
		ip -n "$ns" link set lo up
	done
	lab_link "$LAB_NS_LAN" "$LAB_LAN_IF" "$LAB_NS_GW" "$LAB_GW_LAN_IF" &&
	lab_link "$LAB_NS_GW" "$LAB_GW_WAN_IF" "$LAB_NS_CGN" "$LAB_CGN_IN_IF" &&
	lab_link "$LAB_NS_CGN" "$LAB_CGN_OUT_IF" "$LAB_NS_INET" "$LAB_INET_IF" || {
		lab_err "cannot create veth links"
		return 1
	}

	ip -n "$LAB_NS_LAN" addr add "$LAB_LAN_HOST_IP/24" dev "$LAB_LAN_IF" &&
	ip -n "$LAB_NS_LAN" route add default via "$LAB_GW_LAN_IP" &&
	ip -n "$LAB_NS_GW" addr add "$LAB_GW_LAN_IP/24" dev "$LAB_GW_LAN_IF" &&
	ip -n "$LAB_NS_GW" addr add "$LAB_GW_WAN_IP/24" dev "$LAB_GW_WAN_IF" &&
	ip -n "$LAB_NS_GW" route add default via "$LAB_CGN_IP" &&
	ip -n "$LAB_NS_CGN" addr add "$LAB_CGN_IP/24" dev "$LAB_CGN_IN_IF" &&
	ip -n "$LAB_NS_CGN" addr add "$LAB_CGN_EXT_IP/24" dev "$LAB_CGN_OUT_IF" &&
	ip -n "$LAB_NS_CGN" route add "$LAB_LAN_NET" via "$LAB_GW_WAN_IP" &&
	ip -n "$LAB_NS_INET" addr add "$LAB_INET_IP/24" dev "$LAB_INET_IF" &&
	ip -n "$LAB_NS_INET" addr add "$LAB_INET_ALT_IP/24" dev "$LAB_INET_IF" || {
		lab_err "cannot configure addresses and routes"
		return 1
	}
	# The inet host has no route to 198.51.100.0/24 or 192.0.2.0/24: like the real
	# internet it reaches the home only through the carrier's external address.
	lab_exec gw sysctl -qw net.ipv4.ip_forward=1 &&
	lab_exec cgn sysctl -qw net.ipv4.ip_forward=1 || return 1
	if [ "${LAB_GW_NAT:-local}" = local ]; then
		# the home router's own NAT (nat = local): LAN hosts leave as the gateway
		lab_exec gw nft -f - <<-EOF || return 1
		table ip lab_gw {
			chain postrouting {
				type nat hook postrouting priority srcnat; policy accept;
				oifname "$LAB_GW_WAN_IF" ip saddr $LAB_LAN_NET masquerade
			}
		}
		EOF
	fi
	# duplicate address detection would delay the first packets; the lab is IPv4 only
	for ns in "$LAB_NS_LAN" "$LAB_NS_GW" "$LAB_NS_CGN" "$LAB_NS_INET"; do
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
	done
	return 0
}

# The carrier's nftables: what the package's nft_init.sh would build, in our own table,
# plus the CGN itself: everything from inside leaves masqueraded as LAB_CGN_EXT_IP, and
# inbound is allowed only for established flows and miniupnpd's mappings.
lab_carrier_nft() {
	lab_exec cgn nft list table inet "$LAB_CGN_NFT_TABLE" >/dev/null 2>&1 && return 0
	lab_exec cgn nft -f - <<-EOF
	table inet $LAB_CGN_NFT_TABLE {
		chain forward {
			type filter hook forward priority filter; policy drop;
			ct state established,related accept
			iifname "$LAB_CGN_IN_IF" oifname "$LAB_CGN_OUT_IF" accept
			jump miniupnpd
		}
		chain miniupnpd {
		}
		chain prerouting {
			type nat hook prerouting priority dstnat; policy accept;
			jump prerouting_miniupnpd
		}
		chain postrouting {
			type nat hook postrouting priority srcnat; policy accept;
			jump postrouting_miniupnpd
			oifname "$LAB_CGN_OUT_IF" ip saddr { $LAB_CGN_INSIDE_NET, $LAB_LAN_NET } masquerade
		}
		chain prerouting_miniupnpd {
		}
		chain postrouting_miniupnpd {
		}
	}
	EOF
}

# An RFC 5389 binding responder that honours the RFC 5780 CHANGE-REQUEST flags by
# answering from the other address and/or port, so miniupnpd's full-cone test passes.
lab_write_stun_server() {
	cat >"$LAB_TMP/stun_server.py" <<-'EOF'
	import select, socket, struct, sys
	MAGIC = 0x2112A442
	addrs = (sys.argv[1], sys.argv[2])
	ports = (int(sys.argv[3]), int(sys.argv[3]) + 1)
	socks = {}
	for a in addrs:
	    for p in ports:
	        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	        s.bind((a, p))
	        socks[(a, p)] = s
	print("stun: listening on", " ".join("%s:%d" % k for k in socks), flush=True)
	while True:
	    ready, _, _ = select.select(list(socks.values()), [], [])
	    for s in ready:
	        data, peer = s.recvfrom(2048)
	        if len(data) < 20 or struct.unpack("!H", data[:2])[0] != 0x0001:
	            continue
	        flags, off = 0, 20
	        while off + 4 <= len(data):
	            atype, alen = struct.unpack("!HH", data[off:off + 4])
	            if atype == 0x0003 and alen == 4 and off + 8 <= len(data):
	                flags = struct.unpack("!I", data[off + 4:off + 8])[0]
	            off += 4 + ((alen + 3) & ~3)
	        la, lp = s.getsockname()
	        ra = (addrs[1] if la == addrs[0] else addrs[0]) if flags & 4 else la
	        rp = (ports[1] if lp == ports[0] else ports[0]) if flags & 2 else lp
	        ip = socket.inet_aton(peer[0])
	        attrs = struct.pack("!HHBBH4s", 0x0001, 8, 0, 1, peer[1], ip)
	        attrs += struct.pack("!HHBBHI", 0x0020, 8, 0, 1, peer[1] ^ (MAGIC >> 16),
	                             struct.unpack("!I", ip)[0] ^ MAGIC)
	        reply = struct.pack("!HHI", 0x0101, len(attrs), MAGIC) + data[8:20] + attrs
	        socks[(ra, rp)].sendto(reply, peer)
	        print("stun: %s:%d flags=%d -> from %s:%d" % (peer[0], peer[1], flags, ra, rp),
	              flush=True)
	EOF
}

lab_write_carrier_conf() {
	cat >"$LAB_TMP/miniupnpd.conf" <<-EOF
	# the carrier's PCP server, written by scripts/lab.sh
	ext_ifname=$LAB_CGN_OUT_IF
	listening_ip=$LAB_CGN_IN_IF
	ipv6_disable=yes
	enable_upnp=no
	# NAT-PMP and PCP share UDP 5351; in 2.3.x enable_natpmp switches on both
	enable_natpmp=yes
	pcp_allow_thirdparty=yes
	# epoch counts from daemon start, so a restarted carrier shows an epoch jump
	system_uptime=no
	secure_mode=yes
	ext_perform_stun=yes
	ext_stun_host=$LAB_INET_IP
	ext_stun_port=$LAB_STUN_PORT
	upnp_table_name=$LAB_CGN_NFT_TABLE
	upnp_nat_table_name=$LAB_CGN_NFT_TABLE
	upnp_forward_chain=miniupnpd
	upnp_nat_chain=prerouting_miniupnpd
	upnp_nat_postrouting_chain=postrouting_miniupnpd
	min_lifetime=${LAB_CARRIER_MIN_LIFETIME:-120}
	max_lifetime=${LAB_CARRIER_MAX_LIFETIME:-86400}
	clean_ruleset_interval=0
	uuid=3e2a7f1c-5d1b-4c4e-9d59-6b0c2f1a0001
	allow 1024-65535 $LAB_CGN_INSIDE_NET 1024-65535
	allow 1024-65535 $LAB_LAN_NET 1024-65535
	deny 0-65535 0.0.0.0/0 0-65535
	EOF
}

lab_start_stun() {
	[ -n "$LAB_STUN_PID" ] && kill -0 "$LAB_STUN_PID" 2>/dev/null && return 0
	lab_write_stun_server
	lab_bg inet "$LAB_TMP/stun.log" python3 -u "$LAB_TMP/stun_server.py" \
		"$LAB_INET_IP" "$LAB_INET_ALT_IP" "$LAB_STUN_PORT"
	LAB_STUN_PID=$LAB_LAST_PID
	lab_wait_for "lab_port_bound inet udp $((LAB_STUN_PORT + 1))" 5 || {
		lab_err "STUN server did not start:"
		cat "$LAB_TMP/stun.log" >&2
		return 1
	}
}

lab_carrier_answers() {
	lab_exec gw timeout 3 natpmpc -g "$LAB_CGN_IP" 2>/dev/null |
		grep -q "Public IP address : $LAB_CGN_EXT_IP"
}

lab_start_carrier() {
	local pidfile="$LAB_TMP/miniupnpd.pid"
	if [ -z "$LAB_NS_CGN" ]; then
		lab_err "lab_start_carrier: run lab_up first"
		return 1
	fi
	lab_carrier_nft || { lab_err "cannot create the carrier's nftables"; return 1; }
	lab_start_stun || return 1
	lab_write_carrier_conf
	rm -f "$pidfile"
	if [ "${LAB_CARRIER_DEBUG:-0}" = 1 ]; then
		# -d keeps it in the foreground and logs everything (slow: every nft rule)
		lab_bg cgn "$LAB_TMP/miniupnpd.log" /usr/sbin/miniupnpd -d \
			-f "$LAB_TMP/miniupnpd.conf" -P "$pidfile"
		LAB_CARRIER_PID=$LAB_LAST_PID
	else
		# without -d it daemonizes; its pid file tells us which process is ours
		lab_exec cgn /usr/sbin/miniupnpd -f "$LAB_TMP/miniupnpd.conf" -P "$pidfile" \
			>"$LAB_TMP/miniupnpd.log" 2>&1 </dev/null || {
			lab_err "miniupnpd refused to start:"
			cat "$LAB_TMP/miniupnpd.log" >&2
			return 1
		}
		if ! lab_wait_for "test -s $pidfile" 10; then
			lab_err "miniupnpd wrote no pid file (rerun with LAB_CARRIER_DEBUG=1)"
			return 1
		fi
		LAB_CARRIER_PID=$(cat "$pidfile")
	fi
	# STUN takes about 3 s (miniupnpd waits for all four answers), then 5351 opens
	if ! lab_wait_for "lab_port_bound cgn udp 5351" 20 ||
	    ! lab_wait_for lab_carrier_answers 10; then
		lab_err "miniupnpd does not answer NAT-PMP on $LAB_CGN_IP:5351" \
			"(rerun with LAB_CARRIER_DEBUG=1; log: $LAB_TMP/miniupnpd.log)"
		cat "$LAB_TMP/miniupnpd.log" >&2
		return 1
	fi
	return 0
}

# A second LAN host in its own namespace, on its own gw interface (lan1, no address of its
# own): the host reaches 192.0.2.1 through lan1 (Linux answers ARP for any local address),
# gw routes 192.0.2.11/32 back out of lan1. Serve it with a second lan_interface = lan1.
lab_add_lan_host() {
	LAB_LAN2_HOST_IP="${1:-$LAB_LAN2_HOST_IP}"
	LAB_NS_LAN2="$LAB_PREFIX-lan2"
	export LAB_NS_LAN2 LAB_LAN2_HOST_IP LAB_GW_LAN2_IF
	ip netns add "$LAB_NS_LAN2" || { lab_err "cannot create namespace $LAB_NS_LAN2"; return 1; }
	ip -n "$LAB_NS_LAN2" link set lo up &&
	lab_link "$LAB_NS_LAN2" "$LAB_LAN_IF" "$LAB_NS_GW" "$LAB_GW_LAN2_IF" &&
	ip -n "$LAB_NS_LAN2" addr add "$LAB_LAN2_HOST_IP/24" dev "$LAB_LAN_IF" &&
	ip -n "$LAB_NS_LAN2" route add default via "$LAB_GW_LAN_IP" &&
	ip -n "$LAB_NS_GW" route add "$LAB_LAN2_HOST_IP/32" dev "$LAB_GW_LAN2_IF" || {
		lab_err "cannot set up the second LAN host"
		return 1
	}
	ip netns exec "$LAB_NS_LAN2" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
	return 0
}

lab_stop_carrier() {
	local chain
	[ -n "$LAB_CARRIER_PID" ] || return 0
	# the daemon is not our child: make sure the pid is still miniupnpd before killing it
	if [ "$(cat "/proc/$LAB_CARRIER_PID/comm" 2>/dev/null)" = miniupnpd ]; then
		lab_kill "$LAB_CARRIER_PID"
	fi
	LAB_CARRIER_PID=""
	# a real carrier reboot loses every mapping: flush what miniupnpd left behind
	for chain in miniupnpd prerouting_miniupnpd postrouting_miniupnpd; do
		lab_exec cgn nft flush chain inet "$LAB_CGN_NFT_TABLE" "$chain" 2>/dev/null || true
	done
	return 0
}

lab_down() {
	local ns pid
	# Finish the cleanup even when more signals come (Ctrl-C reaches every process of
	# the group, and timeout(1) forwards it once more).
	trap - EXIT
	trap '' INT TERM HUP
	lab_stop_carrier
	for pid in $LAB_PIDS; do
		lab_kill "$pid"
	done
	LAB_PIDS=""
	LAB_STUN_PID=""
	# anything else still running inside our namespaces was started in this lab
	for ns in "$LAB_NS_LAN" "$LAB_NS_LAN2" "$LAB_NS_GW" "$LAB_NS_CGN" "$LAB_NS_INET"; do
		[ -n "$ns" ] && [ -e "/run/netns/$ns" ] || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -TERM "$pid" 2>/dev/null || true
		done
	done
	for ns in "$LAB_NS_LAN" "$LAB_NS_LAN2" "$LAB_NS_GW" "$LAB_NS_CGN" "$LAB_NS_INET"; do
		[ -n "$ns" ] && [ -e "/run/netns/$ns" ] || continue
		lab_wait_for "test -z \"\$(ip netns pids $ns)\"" 3 ||
			for pid in $(ip netns pids "$ns" 2>/dev/null); do
				kill -KILL "$pid" 2>/dev/null || true
			done
		ip netns del "$ns" 2>/dev/null || true
	done
	if [ -n "$LAB_TMP" ] && [ -d "$LAB_TMP" ] && [ "${LAB_KEEP_TMP:-0}" != 1 ]; then
		rm -rf "$LAB_TMP"
	fi
	LAB_NS_LAN="" LAB_NS_LAN2="" LAB_NS_GW="" LAB_NS_CGN="" LAB_NS_INET="" LAB_TMP=""
	trap - INT TERM HUP
	return 0
}

# ---- carrier faults (tests/netns/faults.sh, issue 7) ------------------------------------
#   lab_pause_carrier        stop miniupnpd by its pid and KEEP its rules in the kernel (a
#                            process that died; lab_start_carrier starts it again with a new
#                            epoch, and miniupnpd 2.3.1 reloads no state of its own)
#   lab_carrier_mappings     the carrier's DNAT rules, one "tcp|udp EXTPORT TARGET:PORT" a
#                            line, sorted (duplicates stay visible)
#   lab_chain_rules NS FAMILY TABLE CHAIN   the number of rules in one nft chain
#   lab_secs_left DEADLINE   whole seconds until DEADLINE (date +%s), at least 1

lab_pause_carrier() {
	[ -n "$LAB_CARRIER_PID" ] || return 0
	# the daemon is not our child: make sure the pid is still miniupnpd before killing it
	if [ "$(cat "/proc/$LAB_CARRIER_PID/comm" 2>/dev/null)" = miniupnpd ]; then
		lab_kill "$LAB_CARRIER_PID"
	fi
	LAB_CARRIER_PID=""
	return 0
}

lab_carrier_mappings() {
	# miniupnpd 2.3.1: iif "out0" @nh,72,8 0x6 th dport 6000 dnat ip to 198.51.100.2:6000
	lab_exec cgn nft list chain inet "$LAB_CGN_NFT_TABLE" prerouting_miniupnpd 2>/dev/null |
		sed -n 's/.*@nh,72,8 \(0x[0-9a-f]*\) th dport \([0-9]*\) dnat ip to \([0-9.:]*\).*/\1 \2 \3/p' |
		sed 's/^0x6 /tcp /; s/^0x11 /udp /' | sort
}

lab_chain_rules() {
	# every rule carries "# handle N"; so do the table and chain lines, which open a "{"
	lab_exec "$1" nft -a list chain "$2" "$3" "$4" 2>/dev/null | grep -v '{' | grep -c '# handle'
}

lab_secs_left() {
	local left=$(($1 - EPOCHSECONDS))
	[ "$left" -ge 1 ] || left=1
	printf '%s\n' "$left"
}

# ---- the gateway's WAN address (tests/netns/faults.sh wan_change, issue 7) ---------------
#   lab_gw_wan_readdress NEWIP   what a DHCP client does on a renew that brings another
#                                lease: delete wan0's address, add NEWIP/24, put the default
#                                route back (it goes with the old address); the carrier
#                                routes the LAN to NEWIP from then on. LAB_GW_WAN_IP
#                                follows. NEWIP may be the current address (the same lease).

lab_gw_wan_readdress() {
	local new="$1" old="$LAB_GW_WAN_IP"
	lab_exec gw ip addr del "$old/24" dev "$LAB_GW_WAN_IF" &&
	lab_exec gw ip addr add "$new/24" dev "$LAB_GW_WAN_IF" &&
	lab_exec gw ip route replace default via "$LAB_CGN_IP" &&
	lab_exec cgn ip route replace "$LAB_LAN_NET" via "$new" || return 1
	LAB_GW_WAN_IP=$new
	export LAB_GW_WAN_IP
}

#   lab_carrier_release ADDR     the carrier forgets the NAT state of an inside address, as
#                                a BNG does when a subscriber's lease ends: every rule of
#                                miniupnpd's chains that names ADDR is deleted (miniupnpd
#                                keeps its mappings in the kernel: they are gone for it too);
#                                its filter rules show the address as a raw payload match
#                                (@nh,128,32 0xc6336402 in an inet table)

lab_carrier_release() {
	local addr="$1" chain handle re hex batch=""
	# shellcheck disable=SC2086
	hex=$(printf '0x%02x%02x%02x%02x' ${addr//./ })
	re="(^|[^0-9.])(${addr//./\\.}|$hex)([^0-9a-f]|$)"
	for chain in prerouting_miniupnpd miniupnpd postrouting_miniupnpd; do
		for handle in $(lab_exec cgn nft -a list chain inet "$LAB_CGN_NFT_TABLE" "$chain" |
			grep -E "$re" | sed -n 's/.*# handle \([0-9]*\)$/\1/p'); do
			batch="${batch}delete rule inet $LAB_CGN_NFT_TABLE $chain handle $handle
"
		done
	done
	[ -z "$batch" ] || printf '%s' "$batch" | lab_exec cgn nft -f -
}

# lab_upnp_env: the environment assignments (for env) under which a daemon with the UPnP IGD
# runs in an IWFD_SANITIZE build. One leak is pupnp 1.8.4's own, not ours: the node free list
# of a subscription's event queue (gena_device.c genaInitNotifyCommon -> ListAddTail) is never
# destroyed when the subscription goes (service_table.c freeSubscription), 24 bytes per GENA
# subscription (docs/upnp.md). It is suppressed by its caller's name; full stacks so that the
# suppression sees the caller. Harmless in a normal build.
lab_upnp_env() {
	printf 'leak:UpnpAcceptSubscription\n' >"$LAB_TMP/lsan-pupnp.supp"
	echo "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0" \
		"LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$LAB_TMP/lsan-pupnp.supp:print_suppressions=1"
}
