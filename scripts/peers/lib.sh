# shellcheck shell=bash
# Helpers sourced by the scripts in scripts/peers/. Not executable on its own.
#
# Conventions shared by every peer script (the Rust test support relies on them):
#   exit 0  success
#   exit 2  usage / configuration error (bad env var, non-loopback address)
#   exit 3  the peer program is not installed: run scripts/peers/install.sh
#   exit 4  a requested port is already taken by another process (caller may retry with new ports)
#   exit 1  anything else (peer failed to start; its logs are copied to stderr)

PEERS_CACHE=${PEERS_CACHE:-/var/cache/siemfwd-peers}
EXIT_USAGE=2
EXIT_NOT_INSTALLED=3
EXIT_PORT_IN_USE=4

die() { # code message...
  local code=$1; shift
  echo "peers: $*" >&2
  exit "$code"
}

not_installed() { # what
  die "$EXIT_NOT_INSTALLED" "$1 is not installed: run scripts/peers/install.sh (as root)"
}

# as_root CMD... : run CMD as root (directly, or through passwordless sudo).
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    echo "peers: need root to run: $*" >&2
    return 1
  fi
}

pkg_installed() { # PKG
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}

# apt_lists_present: true if `apt-get update` ever ran (fresh images ship without lists).
apt_lists_present() {
  compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null 2>&1
}

apt_update() {
  echo "peers: apt-get update" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
}

# ensure_pkgs PKG... : apt-get install the Debian packages that are missing; nothing else.
# `apt-get update` runs only when the package lists are absent or an install attempt fails.
# Daemons are never started by the package scripts: a temporary policy-rc.d answers 101
# ("action forbidden") when none exists, so installing rsyslog does not start a system rsyslogd.
ensure_pkgs() {
  local p missing=()
  for p in "$@"; do
    pkg_installed "$p" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || { echo "peers: apt-get not found; install ${missing[*]} by hand" >&2; return 1; }
  local tmp_policy="" rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
    tmp_policy=1
  fi
  echo "peers: installing ${missing[*]}" >&2
  apt_lists_present || apt_update || rc=$?
  if [ $rc = 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
      || { apt_update && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; } \
      || rc=$?
  fi
  if [ -n "$tmp_policy" ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
  return $rc
}

# check_loopback ADDR : refuse anything but a loopback address (tests must never listen outside).
check_loopback() {
  case "$1" in
    127.*|::1) ;;
    *) die "$EXIT_USAGE" "refusing to bind non-loopback address '$1'" ;;
  esac
}

# check_port NAME VALUE : a port variable must be a number 0..65535 (0 = listener disabled).
check_port() {
  if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -gt 65535 ]; then
    die "$EXIT_USAGE" "$1='$2' is not a port number (0 disables)"
  fi
}

# socket_inodes udp|tcp PORT : inodes of the loopback/any sockets listening on PORT
# (TCP state 0A = LISTEN, UDP state 07 = unconnected). Reads /proc/net directly so that
# neither ss nor netstat has to be installed.
socket_inodes() {
  local proto=$1 hexport st
  hexport=$(printf '%04X' "$2")
  [ "$proto" = udp ] && st=07 || st=0A
  awk -v p="$hexport" -v st="$st" 'FNR > 1 { n = split($2, a, ":"); if (a[n] == p && $4 == st) print $10 }' \
    "/proc/net/$proto" "/proc/net/${proto}6" 2>/dev/null || true
}

# pid_owns_inode PID INODE : true if PID has the socket INODE open.
pid_owns_inode() {
  local fd
  for fd in /proc/"$1"/fd/*; do
    [ "$(readlink "$fd" 2>/dev/null)" = "socket:[$2]" ] && return 0
  done
  return 1
}

# wait_bound PID udp|tcp PORT TIMEOUT_S : wait until PID itself listens on PORT.
# Returns 1 if PID died or the deadline passed, 4 if another process holds the port.
wait_bound() {
  local pid=$1 proto=$2 port=$3 t=$4 i ino foreign=0
  for ((i = 0; i < t * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || { echo "peers: pid $pid exited before listening on $proto/$port" >&2; return 1; }
    for ino in $(socket_inodes "$proto" "$port"); do
      pid_owns_inode "$pid" "$ino" && return 0
      foreign=$((foreign + 1))
    done
    # the port is held by someone else for a full second: our bind() has failed
    if [ "$foreign" -ge 20 ]; then
      echo "peers: $proto port $port is already in use by another process" >&2
      return $EXIT_PORT_IN_USE
    fi
    sleep 0.05
  done
  echo "peers: timeout (${t}s) waiting for pid $pid to listen on $proto/$port" >&2
  return 1
}

# pid_alive PIDFILE : true if the pid in PIDFILE is a live process
pid_alive() {
  [ -s "$1" ] || return 1
  pid_running "$(cat "$1")"
}

# pid_running PID : true if PID is a live process, not a zombie
pid_running() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  # A stopped daemon whose new parent has not reaped it yet is a zombie: kill -0 still
  # succeeds on it, but it is not running (a restart must not mistake it for "already up",
  # a stop need not wait the second or two its reaping can take here).
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ "$state" != Z ] && [ "$state" != X ]
}

# stop_pidfile PIDFILE [SECONDS] : SIGTERM the pid in PIDFILE (only that pid), wait up to
# SECONDS (default 5), then SIGKILL.
stop_pidfile() {
  local f=$1 secs=${2:-5} pid i
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 20; i++)); do pid_running "$pid" || break; sleep 0.05; done
    if pid_running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

# find_prometheus : sets PROMETHEUS (the binary) or returns 1: a system-wide one, else the
# private copy install.sh unpacked.
find_prometheus() {
  local private=$PEERS_CACHE/prometheus/root/usr/bin/prometheus
  if command -v prometheus >/dev/null 2>&1; then
    PROMETHEUS=$(command -v prometheus)
  elif [ -x "$private" ]; then
    PROMETHEUS=$private
  else
    return 1
  fi
  "$PROMETHEUS" --version >/dev/null 2>&1
}

# find_syslog_ng : sets SNG (command array) and SNG_CONFIG_VERSION, or returns 1.
# Debian's syslog-ng-core and rsyslog conflict (both Provide system-log-daemon), so unless
# syslog-ng-core is installed system-wide we run the private copy unpacked by install.sh.
find_syslog_ng() {
  local root=$PEERS_CACHE/syslog-ng-core/root moddir
  if pkg_installed syslog-ng-core && command -v syslog-ng >/dev/null 2>&1; then
    SNG=(syslog-ng)
  elif [ -x "$root/usr/sbin/syslog-ng" ]; then
    moddir=$(find "$root/usr/lib/syslog-ng" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*' | head -n1)
    [ -n "$moddir" ] || return 1
    export LD_LIBRARY_PATH=$root/usr/lib/syslog-ng${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    SNG=("$root/usr/sbin/syslog-ng" "--module-path=$moddir")
  else
    return 1
  fi
  SNG_CONFIG_VERSION=$("${SNG[@]}" --version 2>/dev/null | awk -F': *' '/^Config version/ { print $2; exit }')
  [ -n "$SNG_CONFIG_VERSION" ]
}
