#!/usr/bin/env bash
# syslog-ng.sh WORKDIR start : start a private syslog-ng in the background; print its PID on stdout
# syslog-ng.sh WORKDIR stop  : stop it (SIGTERM, then SIGKILL after 5 s; only the PID in WORKDIR/syslog-ng.pid)
#
# A second, independent RFC 5424 receiver (Debian syslog-ng-core, run from the private copy
# install.sh unpacks, so it coexists with rsyslog). Ports come from the caller (0 or unset =
# disabled; at least one must be set); every listener binds $BIND (default 127.0.0.1):
#   UDP_PORT    syslog(transport(udp))
#   TCP_PORT    syslog(transport(tcp))  RFC 6587 octet counting ONLY: an LF-framed message is
#               dropped ("Invalid frame header")
#   TCPLF_PORT  network(transport(tcp) flags(syslog-protocol))  LF framing only
#   TLS_PORT    syslog(transport(tls))  RFC 5425 (octet counting), server auth only
#   MTLS_PORT   syslog(transport(tls))  client certificate required and verified against ca.pem
#   TLSLF_PORT  network(transport(tls) flags(syslog-protocol))  LF framing, server auth only
# Other env: CERT_DIR=WORKDIR/pki, SERVER_CERT=server|expired-server|wrong-host-server,
#            MAX_MSG=262144 (log-msg-size), BIND=127.0.0.1
# Each enabled listener's port is also written to WORKDIR/ports/<input>.
# Output, one JSON object per line (values are strings):
#   WORKDIR/out/<input>.jsonl          messages passing a STRICT RFC 5424 check of the raw header
#                                      (syslog-ng's own parser is lenient); fields: input, fromhost_ip,
#                                      pri, facility, severity, version, timestamp, hostname, app_name,
#                                      procid, msgid, structured_data, msg, raw, plus SDATA parsed
#   WORKDIR/out/<input>.invalid.jsonl  messages failing it (same fields, no version)
#   WORKDIR/internal.log               syslog-ng's own messages
#   <input> is one of udp tcp tcplf tls mtls tlslf.
# syslog-ng normalises what it parses (NIL PROCID/MSGID/SD -> "", NIL HOSTNAME -> sender IP,
# BOM stripped from msg, timestamp with 6 fraction digits): compare on `raw` for exactness.
# Exit codes: see lib.sh (3 = not installed, 4 = a port is taken).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

usage="usage: [UDP_PORT=..] [TCP_PORT=..] [TCPLF_PORT=..] [TLS_PORT=..] [MTLS_PORT=..] [TLSLF_PORT=..] syslog-ng.sh WORKDIR start|stop"
[ $# -eq 2 ] || die "$EXIT_USAGE" "$usage"
mkdir -p "$1"
WORK=$(cd "$1" && pwd)
PIDFILE=$WORK/syslog-ng.pid        # ours: the PID we started, used by stop
SNG_PIDFILE=$WORK/syslog-ng.self.pid
case "$2" in
  stop) stop_pidfile "$PIDFILE"; exit 0 ;;
  start) ;;
  *) die "$EXIT_USAGE" "$usage" ;;
esac

if pid_alive "$PIDFILE"; then
  cat "$PIDFILE"   # idempotent: already running for this WORKDIR
  exit 0
fi

UDP_PORT=${UDP_PORT:-0} TCP_PORT=${TCP_PORT:-0} TCPLF_PORT=${TCPLF_PORT:-0}
TLS_PORT=${TLS_PORT:-0} MTLS_PORT=${MTLS_PORT:-0} TLSLF_PORT=${TLSLF_PORT:-0}
for v in UDP_PORT TCP_PORT TCPLF_PORT TLS_PORT MTLS_PORT TLSLF_PORT; do check_port "$v" "${!v}"; done
[ "$UDP_PORT$TCP_PORT$TCPLF_PORT$TLS_PORT$MTLS_PORT$TLSLF_PORT" != 000000 ] || die "$EXIT_USAGE" "no port set; $usage"
BIND=${BIND:-127.0.0.1}
check_loopback "$BIND"
CERT_DIR=${CERT_DIR:-$WORK/pki}
SERVER_CERT=${SERVER_CERT:-server}
MAX_MSG=${MAX_MSG:-262144}
case "$SERVER_CERT" in server|expired-server|wrong-host-server) ;; *) die "$EXIT_USAGE" "SERVER_CERT=$SERVER_CERT: want server, expired-server or wrong-host-server" ;; esac
[[ "$MAX_MSG" =~ ^[0-9]+$ ]] || die "$EXIT_USAGE" "MAX_MSG=$MAX_MSG: want a number of bytes"

find_syslog_ng || not_installed syslog-ng
if [ $(( TLS_PORT + MTLS_PORT + TLSLF_PORT )) != 0 ]; then "$HERE/gen-certs.sh" "$CERT_DIR" >&2; fi
rm -rf "$WORK/ports"
mkdir -p "$WORK/out" "$WORK/ports"
CONF=$WORK/syslog-ng.conf

# RFC 5424 section 6 HEADER + STRUCTURED-DATA grammar: PRI 0-191, VERSION 1, full-date/full-time
# with range checks, field lengths, SD-NAME charset (no = ] " SP), PARAM-VALUE with \" \\ \] escapes.
RE5424='(?s)^<(?:[0-9]|[1-9][0-9]|1[0-8][0-9]|19[01])>1 (?:-|[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])) [\x21-\x7e]{1,255} [\x21-\x7e]{1,48} [\x21-\x7e]{1,128} [\x21-\x7e]{1,32} (?:-|(?:\[[\x21\x23-\x3c\x3e-\x5c\x5e-\x7e]{1,32}(?: [\x21\x23-\x3c\x3e-\x5c\x5e-\x7e]{1,32}="(?:[^"\\\]]|\\.)*")*\])+)(?: |$)'

tls_opts() { # peer-verify
  echo "tls(key-file(\"$CERT_DIR/$SERVER_CERT.key\") cert-file(\"$CERT_DIR/$SERVER_CERT.pem\") ca-file(\"$CERT_DIR/ca.pem\") peer-verify($1))"
}
json() { # input-name extra-pairs
  # shellcheck disable=SC2028 # the \n is for syslog-ng's template, not for echo
  echo "\$(format-json input=$1 $2 fromhost_ip=\${SOURCEIP} pri=\${PRI} facility=\${FACILITY_NUM} severity=\${LEVEL_NUM} timestamp=\${S_ISODATE} hostname=\${HOST} app_name=\${PROGRAM} procid=\${PID} msgid=\${MSGID} structured_data=\${SDATA} msg=\${MSG} raw=\${RAWMSG} --key .SDATA.*)\n"
}
src() { # name port driver
  [ "$2" = 0 ] && return 0
  # version=1 is a constant: only messages whose raw header matched f_rfc5424 (VERSION 1) get it
  cat <<CFG
source s_$1 { $3; };
destination d_$1 { file("$WORK/out/$1.jsonl" template("$(json "$1" version=1)")); };
destination d_$1_invalid { file("$WORK/out/$1.invalid.jsonl" template("$(json "$1" "")")); };
log { source(s_$1);
  if (filter(f_rfc5424)) { destination(d_$1); } else { destination(d_$1_invalid); };
};
CFG
}
common="flags(store-raw-message) max-connections(100) log-iw-size(10000)"
{
cat <<CFG
@version: $SNG_CONFIG_VERSION
# generated by scripts/peers/syslog-ng.sh: self-contained (no system() source, no /etc files)
options {
  keep-hostname(yes); chain-hostnames(no); use-dns(no); use-fqdn(no); dns-cache(no);
  keep-timestamp(yes); frac-digits(6); ts-format(iso);
  log-msg-size($MAX_MSG); stats-freq(0); create-dirs(yes); flush-lines(0); log-fifo-size(100000);
};
filter f_rfc5424 { match('$RE5424' value("RAWMSG") type(pcre)); };
source s_internal { internal(); };
log { source(s_internal); destination { file("$WORK/internal.log"); }; };
CFG
src udp   "$UDP_PORT"   "syslog(ip(\"$BIND\") port($UDP_PORT) transport(\"udp\") flags(store-raw-message))"
src tcp   "$TCP_PORT"   "syslog(ip(\"$BIND\") port($TCP_PORT) transport(\"tcp\") $common)"
src tcplf "$TCPLF_PORT" "network(ip(\"$BIND\") port($TCPLF_PORT) transport(\"tcp\") flags(syslog-protocol) $common)"
src tls   "$TLS_PORT"   "syslog(ip(\"$BIND\") port($TLS_PORT) transport(\"tls\") $common $(tls_opts optional-untrusted))"
src mtls  "$MTLS_PORT"  "syslog(ip(\"$BIND\") port($MTLS_PORT) transport(\"tls\") $common $(tls_opts required-trusted))"
src tlslf "$TLSLF_PORT" "network(ip(\"$BIND\") port($TLSLF_PORT) transport(\"tls\") flags(syslog-protocol) $common $(tls_opts optional-untrusted))"
} > "$CONF"

"${SNG[@]}" --syntax-only -f "$CONF" > "$WORK/config-check.log" 2>&1 || { cat "$WORK/config-check.log" >&2; die 1 "syslog-ng rejected $CONF"; }
# -F: foreground of this background job; private pidfile, persist file and control socket;
# --no-caps: do not try to drop Linux capabilities (fails in containers, needless for tests)
nohup "${SNG[@]}" -F --no-caps -f "$CONF" -p "$SNG_PIDFILE" -R "$WORK/syslog-ng.persist" \
  -c "$WORK/syslog-ng.ctl" > "$WORK/syslog-ng.stdout" 2>&1 < /dev/null &
PID=$!
echo "$PID" > "$PIDFILE"

fail() { # code
  cat "$WORK/syslog-ng.stdout" "$WORK/internal.log" >&2 2>/dev/null || true
  stop_pidfile "$PIDFILE"
  exit "$1"
}
for p in "udp udp $UDP_PORT" "tcp tcp $TCP_PORT" "tcplf tcp $TCPLF_PORT" "tls tcp $TLS_PORT" \
         "mtls tcp $MTLS_PORT" "tlslf tcp $TLSLF_PORT"; do
  read -r name proto port <<< "$p"
  [ "$port" = 0 ] && continue
  rc=0; wait_bound "$PID" "$proto" "$port" 15 || rc=$?
  [ $rc = 0 ] || fail $rc
  echo "$port" > "$WORK/ports/$name"
done
echo "$PID"
