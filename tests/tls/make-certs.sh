#!/bin/sh
# Makes the TLS tests' certificates in DIR with the openssl command:
#   ca.pem                 the CA the tests trust (RSA)
#   rsa.pem, rsa.key       a server, RSA, for localhost and 127.0.0.1
#   ec.pem, ec.key         the same with ECDSA P-256
#   other.pem, other.key   the same name, signed by a CA nobody trusts
#   expired.pem/.key       by the trusted CA, expired a day ago
#   client.pem/.key        a client certificate by the trusted CA
#   alt.pem, alt.key       by the trusted CA for example.test only (SNI)
set -eu
d=$1
cd "$d"
q() { "$@" >/dev/null 2>&1 || { echo "make-certs: $* failed" >&2; exit 1; }; }
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
printf 'subjectAltName=DNS:example.test\n' >alt.ext
q openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj /CN=socketloop-test-ca
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout otherca.key -out otherca.pem -days 2 -subj /CN=untrusted-ca
# sign NAME CA DAYS NEWKEY-ARGS... (EXT: the extensions file)
EXT=san.ext
sign() {
    n=$1 ca=$2 days=$3
    shift 3
    q openssl req -newkey "$@" -nodes -keyout "$n.key" -out "$n.csr" \
        -subj /CN=localhost
    q openssl x509 -req -in "$n.csr" -CA "$ca.pem" -CAkey "$ca.key" \
        -CAcreateserial -days "$days" -extfile "$EXT" -out "$n.pem"
}
P256="ec -pkeyopt ec_paramgen_curve:P-256"
sign rsa ca 2 rsa:2048
# shellcheck disable=SC2086 # the key's arguments are words
sign ec ca 2 $P256
# shellcheck disable=SC2086
sign other otherca 2 $P256
# shellcheck disable=SC2086
sign expired ca -1 $P256
# shellcheck disable=SC2086
sign client ca 2 $P256
EXT=alt.ext
# shellcheck disable=SC2086
sign alt ca 2 $P256
