#!/usr/bin/env bash
# install.sh : install the programs the integration tests run as syslog receivers.
#
#   rsyslog + rsyslog-gnutls + rsyslog-openssl + rsyslog-relp  (Debian packages)
#   syslog-ng                     a PRIVATE unpacked copy of Debian's syslog-ng-core in
#                                 $PEERS_CACHE/syslog-ng-core (default /var/cache/siemfwd-peers),
#                                 because syslog-ng-core and rsyslog conflict as packages
#   openssl (CLI, for gen-certs.sh), python3 and systemd (for systemd-analyze) if missing
#   rpm                           `rpm -qlp`, to read the .rpm scripts/package builds
#   binutils                      `objdump -T`, the packaged binary's glibc symbol versions
#   prometheus                    a PRIVATE unpacked copy of Debian's prometheus in
#                                 $PEERS_CACHE/prometheus (the package's post-install would
#                                 start a server on :9090; the binary is static)
#
# Fast no-op when everything is present; `apt-get update` runs only when needed.
# Needs root (or passwordless sudo) only when something is missing. Never starts a daemon.
# Usage: install.sh          install what is missing
#        install.sh --check  exit 0 if everything is installed, 3 (and say what is missing) if not
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

CHECK_ONLY=0
case "${1:-}" in
  --check) CHECK_ONLY=1 ;;
  "") ;;
  *) die "$EXIT_USAGE" "usage: install.sh [--check]" ;;
esac

PKGS=(rsyslog rsyslog-gnutls rsyslog-openssl rsyslog-relp openssl)
command -v python3 >/dev/null 2>&1 || PKGS+=(python3)
# systemd-analyze checks the service unit in packaging/ (nothing is started).
command -v systemd-analyze >/dev/null 2>&1 || PKGS+=(systemd)
# The package test reads the .rpm with rpm (the .deb with dpkg, always on Debian).
command -v rpm >/dev/null 2>&1 || PKGS+=(rpm)
# ... and the glibc symbol versions of the packaged binary with objdump.
command -v objdump >/dev/null 2>&1 || PKGS+=(binutils)

missing=()
for p in "${PKGS[@]}"; do pkg_installed "$p" || missing+=("$p"); done
sng_ok=0
if find_syslog_ng; then sng_ok=1; fi
prom_ok=0
if find_prometheus; then prom_ok=1; fi

if [ ${#missing[@]} -eq 0 ] && [ $sng_ok = 1 ] && [ $prom_ok = 1 ]; then
  [ $CHECK_ONLY = 1 ] || echo "peers: all test peers installed (syslog-ng: ${SNG[0]})" >&2
  exit 0
fi
if [ $CHECK_ONLY = 1 ]; then
  [ $sng_ok = 1 ] || missing+=("syslog-ng (private copy)")
  [ $prom_ok = 1 ] || missing+=("prometheus (private copy)")
  die "$EXIT_NOT_INSTALLED" "missing: ${missing[*]}; run scripts/peers/install.sh"
fi

ensure_pkgs "${PKGS[@]}"

if [ $sng_ok = 0 ]; then
  # syslog-ng-core Conflicts with rsyslog (both Provide system-log-daemon): installing it would
  # remove rsyslog. Unpack the .deb privately instead and install only its library dependencies.
  dest=$PEERS_CACHE/syslog-ng-core
  as_root mkdir -p "$dest"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  chmod 755 "$scratch"
  # apt-get download runs as the `_apt` user when it can: give it a directory it may write to
  if id _apt >/dev/null 2>&1; then as_root chown _apt "$scratch" 2>/dev/null || true; fi
  apt_lists_present || apt_update
  ( cd "$scratch" && { as_root apt-get download -q syslog-ng-core >&2 || { apt_update && as_root apt-get download -q syslog-ng-core >&2; }; } )
  deb=$(ls "$scratch"/syslog-ng-core_*.deb)
  # Depends: "libc6 (>= 2.34), libcap2 (>= 1:2.10), ..., sysvinit-utils (>= 3.05-4~) | lsb-base"
  # -> first alternative of each, version constraint dropped; init-script helpers are not needed.
  deps=()
  while IFS= read -r d; do
    case "$d" in ""|sysvinit-utils|lsb-base|libc6) ;; *) deps+=("$d") ;; esac
  done < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' | tr -d ' ')
  [ ${#deps[@]} -eq 0 ] || ensure_pkgs "${deps[@]}"
  as_root rm -rf "$dest/root.new"
  as_root dpkg-deb -x "$deb" "$dest/root.new"
  as_root rm -rf "$dest/root"
  as_root mv "$dest/root.new" "$dest/root"
  find_syslog_ng || die 1 "unpacked syslog-ng-core into $dest/root but it does not run: try '$dest/root/usr/sbin/syslog-ng --version'"
fi
if [ $prom_ok = 0 ]; then
  # Only the binary: no service, no dependency (a static Go program).
  dest=$PEERS_CACHE/prometheus
  as_root mkdir -p "$dest"
  scratch=$(mktemp -d)
  chmod 755 "$scratch"
  if id _apt >/dev/null 2>&1; then as_root chown _apt "$scratch" 2>/dev/null || true; fi
  apt_lists_present || apt_update
  ( cd "$scratch" && { as_root apt-get download -q prometheus >&2 || { apt_update && as_root apt-get download -q prometheus >&2; }; } )
  deb=$(ls "$scratch"/prometheus_*.deb)
  as_root rm -rf "$dest/root.new"
  as_root dpkg-deb -x "$deb" "$dest/root.new"
  as_root rm -rf "$dest/root"
  as_root mv "$dest/root.new" "$dest/root"
  rm -rf "$scratch"
  find_prometheus || die 1 "unpacked prometheus into $dest/root but it does not run: try '$dest/root/usr/bin/prometheus --version'"
fi
echo "peers: test peers installed (rsyslogd $(rsyslogd -v | awk 'NR==1 { print $2 }'), syslog-ng config version $SNG_CONFIG_VERSION from ${SNG[0]})" >&2
