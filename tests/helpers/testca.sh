#!/bin/sh
# Makes a throwaway PKI for TLS tests in DIR: a CA, a server certificate for 127.0.0.1 and
# localhost and a client certificate both signed by it, and a second, unrelated CA.
# Usage: testca.sh DIR
set -eu
dir=$1
cd "$dir"

cat >pki.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name, common name
  newkey "$1.key"
  openssl req -x509 -config pki.cnf -extensions ca_ext -key "$1.key" -subj "/CN=$2" \
    -days 2 -out "$1.pem" 2>/dev/null
}

leaf() { # name, common name, extension section
  newkey "$1.key"
  openssl req -new -config pki.cnf -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile pki.cnf -extensions "$3" -out "$1.pem" 2>/dev/null
}

ca ca "Hangar Test CA"
ca other-ca "Unrelated Test CA"
leaf server 127.0.0.1 server_ext
leaf client hangar-test-client client_ext
