#!/usr/bin/env bash
# gen-certs.sh DIR : create a throw-away test PKI in DIR (idempotent; only needs the openssl CLI).
#
#   ca.pem / ca.key                       self-signed test CA (CN=siemfwd-test-ca)
#   server.pem / server.key               CN=localhost, SAN DNS:localhost IP:127.0.0.1 IP:::1, signed by ca
#   client.pem / client.key               CN=forwarder-client, clientAuth, signed by ca
#   other-ca.pem / other-ca.key           an UNRELATED CA (CN=siemfwd-other-ca)
#   other-client.pem / other-client.key   CN=forwarder-client signed by other-ca (must be refused)
#   expired-server.pem / .key             like server.pem, signed by ca, but valid only in 2020 (must be refused)
#   wrong-host-server.pem / .key          CN/SAN wrong.example, signed by ca (must be refused for "localhost")
#
# Keys: unencrypted PKCS#8 RSA-2048. Certs: 3650 days (except the expired one).
# Re-running is a no-op when every file exists and the chain verifies. Files appear in DIR only
# once complete (generated in a scratch dir first), so a half-written PKI is never used.
set -euo pipefail
DIR=${1:?usage: gen-certs.sh DIR}
command -v openssl >/dev/null 2>&1 || { echo "peers: openssl is not installed: run scripts/peers/install.sh" >&2; exit 3; }
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

FILES=(ca.pem ca.key server.pem server.key client.pem client.key other-ca.pem other-ca.key
       other-client.pem other-client.key expired-server.pem expired-server.key
       wrong-host-server.pem wrong-host-server.key)
complete() {
  local f
  for f in "${FILES[@]}"; do [ -s "$DIR/$f" ] || return 1; done
  openssl verify -CAfile "$DIR/ca.pem" "$DIR/server.pem" "$DIR/client.pem" "$DIR/wrong-host-server.pem" >/dev/null 2>&1 &&
    openssl verify -CAfile "$DIR/other-ca.pem" "$DIR/other-client.pem" >/dev/null 2>&1
}
if complete; then exit 0; fi

WORK=$(mktemp -d "$DIR/.gen.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

DAYS=3650
LEAF_BASE='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'
SERVER_EXT="$LEAF_BASE
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
CLIENT_EXT="$LEAF_BASE
extendedKeyUsage=clientAuth
subjectAltName=DNS:forwarder-client"
WRONG_EXT="$LEAF_BASE
extendedKeyUsage=serverAuth
subjectAltName=DNS:wrong.example"

mkkey() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null; }
mkca() { # name cn
  mkkey "$1"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days $DAYS -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash"
}
mkleaf() { # name cn ca extensions
  mkkey "$1"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2"
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -set_serial "0x$(openssl rand -hex 8)" \
    -out "$1.pem" -days $DAYS -extfile "$1.ext" 2>/dev/null
}
# `openssl x509 -req` (OpenSSL 3.0) cannot back-date a certificate; `openssl ca` can (-startdate/-enddate).
mkexpired() { # name cn ca extensions
  mkkey "$1"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2"
  printf '%s\n' "$4" > "$1.ext"
  mkdir -p ca-db && : > ca-db/index.txt && openssl rand -hex 8 > ca-db/serial
  cat > ca-db/ca.cnf <<CNF
[ca]
default_ca = test_ca
[test_ca]
database = $WORK/ca-db/index.txt
new_certs_dir = $WORK/ca-db
serial = $WORK/ca-db/serial
default_md = sha256
policy = any_cn
unique_subject = no
[any_cn]
commonName = supplied
CNF
  openssl ca -batch -config ca-db/ca.cnf -cert "$3.pem" -keyfile "$3.key" -in "$1.csr" -out "$1.pem" \
    -notext -startdate 20200101000000Z -enddate 20200201000000Z -extfile "$1.ext" 2>/dev/null
}

mkca ca siemfwd-test-ca
mkleaf server localhost ca "$SERVER_EXT"
mkleaf client forwarder-client ca "$CLIENT_EXT"
mkleaf wrong-host-server wrong.example ca "$WRONG_EXT"
mkexpired expired-server localhost ca "$SERVER_EXT"
mkca other-ca siemfwd-other-ca
mkleaf other-client forwarder-client other-ca "$CLIENT_EXT"

# sanity: the expired cert must fail verification for being expired, and for nothing else
verdict=$(openssl verify -CAfile ca.pem expired-server.pem 2>&1 || true)
if [[ "$verdict" != *"certificate has expired"* ]]; then
  echo "peers: gen-certs: expired-server.pem is not rejected as expired" >&2; exit 1
fi
openssl verify -CAfile ca.pem -no_check_time expired-server.pem >/dev/null
openssl verify -CAfile ca.pem server.pem client.pem wrong-host-server.pem >/dev/null
openssl verify -CAfile other-ca.pem other-client.pem >/dev/null
# the peers run as the invoking user: keys stay readable by that user only
chmod 600 ./*.key
for f in "${FILES[@]}"; do mv -f "$f" "$DIR/$f"; done
