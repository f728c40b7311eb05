#!/usr/bin/env bash
# Test certificates for TLS on loopback: a CA, a server certificate for 127.0.0.1 and
# localhost signed by it (also as a PKCS#12 keystore, password "openorder", for Java
# servers), a client certificate signed by it (mTLS), and an unrelated CA (for "untrusted").
# Made with openssl once per directory; valid 30 days.
#
#   scripts/tls.sh DIR
set -euo pipefail

DIR="${1:?usage: $0 DIR}"
if [ -f "$DIR/.complete" ]; then exit 0; fi
mkdir -p "$DIR"
cd "$DIR"

ca() { # name subject
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$1.key" -out "$1.pem" 2>/dev/null
}

signed() { # name subject extensions
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ca ca "OpenOrder test CA"
ca other-ca "Someone else's CA"
signed server localhost "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
signed client openorder-client "extendedKeyUsage=clientAuth"
openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -name server \
  -passout pass:openorder -out server.p12
chmod 600 ./*.key
touch .complete
echo "tls.sh: test certificates in $DIR" >&2
