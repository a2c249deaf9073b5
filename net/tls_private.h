/* What net/tls.c and net/tls_config.c share: the configuration object and
 * the making of error results with OpenSSL's reasons. */
#ifndef NET_TLS_PRIVATE_H
#define NET_TLS_PRIVATE_H

#include "internal.h"
#include "socketloop/tls.h"

#include <openssl/ssl.h>
#include <stdatomic.h>

/* A server's further certificate, chosen by the client's SNI name. */
typedef struct net__tls_cert {
    X509 *leaf;
    EVP_PKEY *key;
    STACK_OF(X509) * chain;
} net__tls_cert;

struct net_tls_config {
    SSL_CTX *ctx;
    int role;           /* NET_TLS_CLIENT or NET_TLS_SERVER */
    int verify;         /* NET_TLS_VERIFY_* */
    int has_cert;       /* the first certificate is in ctx */
    net__tls_cert *sni; /* the later ones */
    int nsni;
    unsigned char *alpn; /* the protocols in ALPN's wire format */
    unsigned alpn_len;
    atomic_int refs; /* the caller's, and one per socket that uses it */
};

void net__tls_config_unref(net_tls_config *c);
/* Returns code, having made its text "what: reason" from OpenSSL's
 * error queue (the earliest entry), which it then clears. */
int net__tls_fail(int code, const char *what);

#endif
