#!/usr/bin/env bash
# rsyslog.sh WORKDIR start : start a private rsyslogd in the background; print its PID on stdout
# rsyslog.sh WORKDIR stop  : stop it (SIGTERM, then SIGKILL after 30 s, once it had time to write out
#                            its queue; only the PID in WORKDIR/rsyslog.pid)
#
# Ports come from the caller (0 or unset = listener disabled; at least one must be set).
# Every listener binds $BIND (default 127.0.0.1; only loopback is accepted):
#   UDP_PORT       imudp
#   TCP_PORT       imtcp plain; LF *and* octet-counted framing on the same port (auto-detected
#                  per frame: a leading digit means octet counting, RFC 6587 3.4.1)
#   TLS_PORT       imtcp + TLS (RFC 5425), server auth only
#   MTLS_PORT      imtcp + TLS, client certificate REQUIRED and verified against ca.pem
#   RELP_PORT      imrelp plain
#   RELPTLS_PORT   imrelp + TLS, server auth only
#   RELPMTLS_PORT  imrelp + TLS, client certificate required (certvalid)
# TCP_PORT, TLS_PORT and MTLS_PORT also take "auto": rsyslog binds port 0 and writes the port
# the kernel chose (imtcp listenPortFileName), so there is no window in which another process
# can take it. Every enabled listener's port ends up in WORKDIR/ports/<input>.
# Other env:
#   CERT_DIR=WORKDIR/pki     test PKI (made by gen-certs.sh when missing)
#   SERVER_CERT=server       which key pair in CERT_DIR the TLS listeners present:
#                            server | expired-server | wrong-host-server
#   TLS_DRIVER=gtls|ossl     netstream driver for imtcp TLS (default gtls)
#   RELP_TLSLIB=openssl      librelp TLS backend (gnutls accepts untrusted client certs with certvalid!)
#   MAX_MSG=256k             global maxMessageSize (rsyslog's default 8k TRUNCATES longer messages)
#   ESCAPE_CC=off            parser.escapeControlCharactersOnReceive; rsyslog's default "on" turns
#                            LF into "#012" -- off keeps received == sent; "on" mimics a stock SIEM box
#   QUEUE_SHUTDOWN_MS=20000  main queue's timeoutShutdown: how long a stopping rsyslogd keeps writing
#                            out what it accepted. rsyslog's default, 1500, DISCARDS the rest (lines
#                            it read, so no TCP sender can notice); stay below the caller's SIGKILL
#                            deadline (tests/it/support/peers.rs gives rsyslogd 30 s)
#   QUEUE_TYPE=fixedarray    main queue type; "direct" runs the actions (the write to the output
#                            file) before an input goes on -- imrelp then answers a message only
#                            once it is written, and a SIGKILL loses nothing rsyslog answered for
#   QUEUE_WORKERS=1          main queue worker threads; 1 writes messages out in the order they were
#                            received (more workers write batches in parallel and reorder them)
#   OUTPUT=full|slim         slim writes only input, msg and received: a fifth of the bytes, for
#                            tests that send a million messages and look at their bodies only
# Output, one JSON object per line and per received message (fields are strings):
#   WORKDIR/out/<input>.jsonl  input (udp tcp tls mtls relp relptls relpmtls), fromhost_ip, pri,
#                              facility, severity, version, timestamp, hostname, app_name, procid,
#                              msgid, structured_data, msg, raw (the message without framing),
#                              received (rsyslog's reception time, RFC 3339 with microseconds);
#                              OUTPUT=slim: input, msg, received only
#   WORKDIR/internal.log       rsyslogd's own messages (TLS errors, truncation warnings...)
# Exit codes: see lib.sh (3 = not installed, 4 = a port is taken).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

usage="usage: [UDP_PORT=..] [TCP_PORT=..] [TLS_PORT=..] [MTLS_PORT=..] [RELP_PORT=..] [RELPTLS_PORT=..] [RELPMTLS_PORT=..] rsyslog.sh WORKDIR start|stop"
[ $# -eq 2 ] || die "$EXIT_USAGE" "$usage"
mkdir -p "$1"
WORK=$(cd "$1" && pwd)
PIDFILE=$WORK/rsyslog.pid          # ours: the PID we started, used by stop
RS_PIDFILE=$WORK/rsyslogd.self.pid  # rsyslogd's own -i file (it refuses to start if that file exists)
case "$2" in
  stop) stop_pidfile "$PIDFILE" 30; exit 0 ;;
  start) ;;
  *) die "$EXIT_USAGE" "$usage" ;;
esac

if pid_alive "$PIDFILE"; then
  cat "$PIDFILE"   # idempotent: already running for this WORKDIR
  exit 0
fi

UDP_PORT=${UDP_PORT:-0} TCP_PORT=${TCP_PORT:-0} TLS_PORT=${TLS_PORT:-0} MTLS_PORT=${MTLS_PORT:-0}
RELP_PORT=${RELP_PORT:-0} RELPTLS_PORT=${RELPTLS_PORT:-0} RELPMTLS_PORT=${RELPMTLS_PORT:-0}
for v in UDP_PORT RELP_PORT RELPTLS_PORT RELPMTLS_PORT; do check_port "$v" "${!v}"; done
for v in TCP_PORT TLS_PORT MTLS_PORT; do [ "${!v}" = auto ] || check_port "$v" "${!v}"; done
[ "$UDP_PORT$TCP_PORT$TLS_PORT$MTLS_PORT$RELP_PORT$RELPTLS_PORT$RELPMTLS_PORT" != 0000000 ] || die "$EXIT_USAGE" "no port set; $usage"
BIND=${BIND:-127.0.0.1}
check_loopback "$BIND"
CERT_DIR=${CERT_DIR:-$WORK/pki}
SERVER_CERT=${SERVER_CERT:-server}
TLS_DRIVER=${TLS_DRIVER:-gtls}
RELP_TLSLIB=${RELP_TLSLIB:-openssl}
MAX_MSG=${MAX_MSG:-256k}
ESCAPE_CC=${ESCAPE_CC:-off}
QUEUE_SHUTDOWN_MS=${QUEUE_SHUTDOWN_MS:-20000}
QUEUE_WORKERS=${QUEUE_WORKERS:-1}
QUEUE_TYPE=${QUEUE_TYPE:-fixedarray}
case "$QUEUE_TYPE" in fixedarray|linkedlist|direct) ;; *) die "$EXIT_USAGE" "QUEUE_TYPE=$QUEUE_TYPE: want fixedarray, linkedlist or direct" ;; esac
OUTPUT=${OUTPUT:-full}
case "$SERVER_CERT" in server|expired-server|wrong-host-server) ;; *) die "$EXIT_USAGE" "SERVER_CERT=$SERVER_CERT: want server, expired-server or wrong-host-server" ;; esac
case "$TLS_DRIVER" in gtls|ossl) ;; *) die "$EXIT_USAGE" "TLS_DRIVER=$TLS_DRIVER: want gtls or ossl" ;; esac
case "$ESCAPE_CC" in on|off) ;; *) die "$EXIT_USAGE" "ESCAPE_CC=$ESCAPE_CC: want on or off" ;; esac
[[ "$QUEUE_SHUTDOWN_MS" =~ ^[0-9]+$ ]] || die "$EXIT_USAGE" "QUEUE_SHUTDOWN_MS=$QUEUE_SHUTDOWN_MS: want milliseconds"
case "$OUTPUT" in full|slim) ;; *) die "$EXIT_USAGE" "OUTPUT=$OUTPUT: want full or slim" ;; esac
[[ "$QUEUE_WORKERS" =~ ^[1-9][0-9]*$ ]] || die "$EXIT_USAGE" "QUEUE_WORKERS=$QUEUE_WORKERS: want a count >= 1"

command -v rsyslogd >/dev/null 2>&1 || not_installed rsyslog
rsys_mods=$(dirname "$(dpkg -L rsyslog 2>/dev/null | grep -m1 '/imtcp.so$' || echo /usr/lib/x86_64-linux-gnu/rsyslog/imtcp.so)")
on() { [ "$1" != 0 ]; }
tls=0; if on "$TLS_PORT" || on "$MTLS_PORT"; then tls=1; fi
relptls=$(( RELPTLS_PORT + RELPMTLS_PORT ))
[ $tls = 0 ] || [ -e "$rsys_mods/lmnsd_$TLS_DRIVER.so" ] || not_installed "rsyslog TLS driver $TLS_DRIVER (rsyslog-gnutls / rsyslog-openssl)"
[ $(( RELP_PORT + relptls )) = 0 ] || [ -e "$rsys_mods/imrelp.so" ] || not_installed "rsyslog-relp"
if [ $(( tls + relptls )) != 0 ]; then "$HERE/gen-certs.sh" "$CERT_DIR" >&2; fi

rm -rf "$WORK/ports"
mkdir -p "$WORK/spool" "$WORK/out" "$WORK/ports"
CONF=$WORK/rsyslog.conf
KEY=$CERT_DIR/$SERVER_CERT.key
CRT=$CERT_DIR/$SERVER_CERT.pem

port_attrs() { # input-name port|auto
  if [ "$2" = auto ]; then
    echo "port=\"0\" listenPortFileName=\"$WORK/ports/$1\""
  else
    echo "port=\"$2\""
  fi
}
imtcp_tls() { # input-name port authmode
  cat <<CFG
input(type="imtcp" address="$BIND" $(port_attrs "$1" "$2") name="$1" ruleset="recv" MaxFrameSize="10000000"
      StreamDriver.Name="$TLS_DRIVER" StreamDriver.Mode="1" StreamDriver.AuthMode="$3"
      StreamDriver.CAFile="$CERT_DIR/ca.pem" StreamDriver.CertFile="$CRT" StreamDriver.KeyFile="$KEY")
CFG
}
imrelp_tls() { # input-name port extra
  cat <<CFG
input(type="imrelp" address="$BIND" port="$2" name="$1" ruleset="recv" maxDataSize="$MAX_MSG"
      tls="on" tls.caCert="$CERT_DIR/ca.pem" tls.myCert="$CRT" tls.myPrivKey="$KEY" $3)
CFG
}

{
cat <<CFG
# generated by scripts/peers/rsyslog.sh: self-contained (no imuxsock/imklog, no /etc files)
global(
  maxMessageSize="$MAX_MSG"   # must precede every input, or inputs keep the 8k default
  workDirectory="$WORK/spool"
  parser.escapeControlCharactersOnReceive="$ESCAPE_CC"
  net.enableDNS="off"
  processInternalMessages="on"
)
# Every input's ruleset has no queue of its own, so this queue holds everything read and not yet
# written. On SIGTERM rsyslog stops its inputs, then gives this queue timeoutShutdown to drain
# and timeoutActionCompletion to finish the action under way; what is left is discarded (no
# saveOnShutdown: that needs a disk queue). One worker keeps the received order in the output.
main_queue(
  queue.type="$QUEUE_TYPE"
  queue.workerThreads="$QUEUE_WORKERS"
  queue.timeoutShutdown="$QUEUE_SHUTDOWN_MS"
  queue.timeoutActionCompletion="$QUEUE_SHUTDOWN_MS"
)
CFG
if [ "$OUTPUT" = slim ]; then
cat <<CFG
template(name="json" type="list" option.jsonf="on") {
  property(outname="input" name="inputname" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="received" name="timegenerated" dateFormat="rfc3339" format="jsonf")
}
CFG
else
cat <<CFG
template(name="json" type="list" option.jsonf="on") {
  property(outname="input" name="inputname" format="jsonf")
  property(outname="fromhost_ip" name="fromhost-ip" format="jsonf")
  property(outname="pri" name="pri" format="jsonf")
  property(outname="facility" name="syslogfacility" format="jsonf")
  property(outname="severity" name="syslogseverity" format="jsonf")
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app_name" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="structured_data" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="raw" name="rawmsg" format="jsonf")
  property(outname="received" name="timegenerated" dateFormat="rfc3339" format="jsonf")
}
CFG
fi
cat <<CFG
template(name="perInput" type="string" string="$WORK/out/%inputname%.jsonl")
ruleset(name="recv") {
  action(type="omfile" dynaFile="perInput" template="json" flushOnTXEnd="on" asyncWriting="off")
}
action(type="omfile" file="$WORK/internal.log")
CFG
if [ "$UDP_PORT" != 0 ]; then
  echo 'module(load="imudp")'
  echo "input(type=\"imudp\" address=\"$BIND\" port=\"$UDP_PORT\" name=\"udp\" ruleset=\"recv\")"
fi
if on "$TCP_PORT" || [ $tls = 1 ]; then echo 'module(load="imtcp" maxSessions="1000")'; fi
if on "$TCP_PORT"; then
  echo "input(type=\"imtcp\" address=\"$BIND\" $(port_attrs tcp "$TCP_PORT") name=\"tcp\" ruleset=\"recv\" SupportOctetCountedFraming=\"on\" MaxFrameSize=\"10000000\")"
fi
if on "$TLS_PORT"; then imtcp_tls tls "$TLS_PORT" anon; fi
if on "$MTLS_PORT"; then imtcp_tls mtls "$MTLS_PORT" x509/certvalid; fi
if [ $(( RELP_PORT + relptls )) != 0 ]; then echo "module(load=\"imrelp\" tls.tlslib=\"$RELP_TLSLIB\")"; fi
if [ "$RELP_PORT" != 0 ]; then
  echo "input(type=\"imrelp\" address=\"$BIND\" port=\"$RELP_PORT\" name=\"relp\" ruleset=\"recv\" maxDataSize=\"$MAX_MSG\")"
fi
if [ "$RELPTLS_PORT" != 0 ]; then imrelp_tls relptls "$RELPTLS_PORT" ""; fi
if [ "$RELPMTLS_PORT" != 0 ]; then imrelp_tls relpmtls "$RELPMTLS_PORT" 'tls.authMode="certvalid"'; fi
} > "$CONF"

rsyslogd -N1 -f "$CONF" > "$WORK/config-check.log" 2>&1 || { cat "$WORK/config-check.log" >&2; die 1 "rsyslog rejected $CONF"; }
rm -f "$RS_PIDFILE"   # stale: pid_alive said our rsyslogd is not running
# -n: stay in the foreground of this background job; -i/-f: private pidfile and config
nohup rsyslogd -n -f "$CONF" -i "$RS_PIDFILE" > "$WORK/rsyslogd.stdout" 2>&1 < /dev/null &
PID=$!
# Whatever fails from here on (even a write on a full disk), the caller gets no PID to stop:
# stop the daemon we started before exiting.
trap 'rc=$?; [ $rc = 0 ] || kill -TERM "$PID" 2>/dev/null || true' EXIT
echo "$PID" > "$PIDFILE"

fail() { # code
  cat "$WORK/rsyslogd.stdout" "$WORK/internal.log" >&2 2>/dev/null || true
  stop_pidfile "$PIDFILE"
  exit "$1"
}
# wait_port_file NAME : the port rsyslog chose for an "auto" listener, once it wrote it
wait_port_file() {
  local f=$WORK/ports/$1 i
  for ((i = 0; i < 300; i++)); do
    if [[ "$(cat "$f" 2>/dev/null)" =~ ^[0-9]+$ ]] && [ "$(cat "$f")" != 0 ]; then cat "$f"; return 0; fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "peers: rsyslogd did not report the port of $1 in $f" >&2
  return 1
}
for p in "udp udp $UDP_PORT" "tcp tcp $TCP_PORT" "tls tcp $TLS_PORT" "mtls tcp $MTLS_PORT" \
         "relp tcp $RELP_PORT" "relptls tcp $RELPTLS_PORT" "relpmtls tcp $RELPMTLS_PORT"; do
  read -r name proto port <<< "$p"
  [ "$port" = 0 ] && continue
  if [ "$port" = auto ]; then port=$(wait_port_file "$name") || fail 1; fi
  rc=0; wait_bound "$PID" "$proto" "$port" 15 || rc=$?
  [ $rc = 0 ] || fail $rc
  echo "$port" > "$WORK/ports/$name"
done
echo "$PID"
