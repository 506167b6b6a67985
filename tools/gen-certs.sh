#!/usr/bin/env bash
# Generates the test and demo PKI for ferry's mutual TLS into OUTDIR (ECDSA P-256, a second or so).
#
#   tools/gen-certs.sh OUTDIR
#
# OUTDIR/
#   ca.crt ca.key                      the tunnel CA both ends trust
#   terminator.crt/.key                SAN DNS:ferry-terminator, DNS:localhost, IP:127.0.0.1
#   initiator.crt/.key                 SAN DNS:ferry-initiator (client certificate)
#   foreign-ca.crt/.key                an unrelated CA
#   foreign-terminator.crt/.key        the terminator's names, signed by foreign-ca
#   expired-initiator.crt/.key         the initiator's name, valid only 2020-01-01..2020-01-02
#   wrong-san-terminator.crt/.key      signed by ca, SAN DNS:not-ferry-terminator
#   impostor-initiator.crt/.key        signed by ca, CN ferry-initiator but SAN DNS:someone-else
#   impostor-terminator.crt/.key       signed by ca, CN ferry-terminator, only a URI SAN
#   spiffe-initiator.crt/.key          SAN URI:spiffe://cluster-a.example/ns/ferry/sa/initiator
#   spiffe-terminator.crt/.key         SAN URI:spiffe://cluster-b.example/ns/ferry/sa/terminator
#
# Idempotent: a complete OUTDIR is left alone; otherwise the whole set is made in a scratch
# directory and moved in, so a crash never leaves a half-made PKI behind.
set -euo pipefail

if [[ $# -ne 1 || -z $1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
# Absolute before the cd below: a relative OUTDIR would otherwise name a path inside the
# scratch directory by the time the certificates are moved in.
out=$(realpath -m -- "$1")
files=(ca foreign-ca terminator initiator foreign-terminator expired-initiator wrong-san-terminator
    impostor-initiator impostor-terminator spiffe-initiator spiffe-terminator)

complete=1
for f in "${files[@]}"; do
    [[ -s $out/$f.crt && -s $out/$f.key ]] || complete=0
done
if [[ $complete == 1 ]]; then
    exit 0
fi

mkdir -p "$out"
work=$(mktemp -d "$out/.gen.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# One config for req, x509 and ca so the host's openssl.cnf plays no part.
cat >pki.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:ferry-terminator, DNS:localhost, IP:127.0.0.1
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:ferry-initiator
[wrong_san]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:not-ferry-terminator
[impostor_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:someone-else
[impostor_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = URI:spiffe://elsewhere.example/ns/other/sa/server
[spiffe_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = URI:spiffe://cluster-a.example/ns/ferry/sa/initiator
[spiffe_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = URI:spiffe://cluster-b.example/ns/ferry/sa/terminator
# 'openssl ca' is the 3.0 CLI's only way to give a certificate dates in the past.
[ca]
default_ca = backdating_ca
[backdating_ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any_name
unique_subject = no
[any_name]
commonName = supplied
EOF

# openssl chats on stderr even when it succeeds: keep that out of sight unless a step fails.
quiet() { "$@" 2>>log || { cat log >&2; return 1; }; }
key() { quiet openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
serial() { echo "0x$(openssl rand -hex 8)"; }

ca() { # name CN
    key "$1"
    openssl req -config pki.cnf -new -x509 -sha256 -days 3650 -key "$1.key" -subj "/CN=$2" \
        -extensions v3_ca -set_serial "$(serial)" -out "$1.crt"
}

leaf() { # name CN issuer extensions
    key "$1"
    openssl req -config pki.cnf -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
    quiet openssl x509 -req -sha256 -days 825 -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" \
        -set_serial "$(serial)" -extfile pki.cnf -extensions "$4" -out "$1.crt"
}

ca ca "ferry test CA"
ca foreign-ca "ferry foreign CA"
leaf terminator ferry-terminator ca server
leaf initiator ferry-initiator ca client
leaf foreign-terminator ferry-terminator foreign-ca server
leaf wrong-san-terminator not-ferry-terminator ca wrong_san
leaf impostor-initiator ferry-initiator ca impostor_client
leaf impostor-terminator ferry-terminator ca impostor_server
leaf spiffe-initiator spiffe-initiator ca spiffe_client
leaf spiffe-terminator spiffe-terminator ca spiffe_server

key expired-initiator
openssl req -config pki.cnf -new -key expired-initiator.key -subj "/CN=ferry-initiator" \
    -out expired-initiator.csr
: >index.txt
echo 1000 >serial
quiet openssl ca -batch -config pki.cnf -notext -cert ca.crt -keyfile ca.key \
    -startdate 20200101000000Z -enddate 20200102000000Z -extfile pki.cnf -extensions client \
    -in expired-initiator.csr -out expired-initiator.crt

chmod 600 ./*.key
for f in "${files[@]}"; do
    mv -f "$f.key" "$f.crt" "$out/"
done
