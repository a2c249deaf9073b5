/* TLS configuration objects (socketloop/tls.h): an OpenSSL context per
 * configuration, with the settings every socket made from it shares. */
#include "tls_private.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int net__tls_fail(int code, const char *what)
{
    char text[256];
    unsigned long e = ERR_peek_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    snprintf(text, sizeof text, "%s: %s", what, why ? why : "failed");
    ERR_clear_error();
    gt__set_detail(code, text);
    return code;
}

static void apply_verify(net_tls_config *c)
{
    int mode = SSL_VERIFY_NONE;
    if (c->verify != NET_TLS_VERIFY_NONE) mode = SSL_VERIFY_PEER;
    if (c->role == NET_TLS_SERVER && c->verify == NET_TLS_VERIFY_REQUIRE)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(c->ctx, mode, NULL);
}

/* A server picks its certificate by the client's SNI name: the first
 * later one whose names match it, else the first (already in place). */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const net_tls_config *c = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_OK;
    for (int i = 0; i < c->nsni; i++) {
        const net__tls_cert *k = &c->sni[i];
        if (X509_check_host(k->leaf, name, 0, 0, NULL) != 1) continue;
        if (!SSL_use_cert_and_key(ssl, k->leaf, k->key, k->chain, 1))
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        break;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* A server picks the first of its protocols that the client offers. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    net_tls_config *c = arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, c->alpn, c->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

int net_tls_config_new(net_tls_config **out, int role)
{
    if (!out || (role != NET_TLS_CLIENT && role != NET_TLS_SERVER))
        return -EINVAL;
    net_tls_config *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->ctx = SSL_CTX_new(role == NET_TLS_SERVER ? TLS_server_method()
                                                : TLS_client_method());
    if (!c->ctx) {
        free(c);
        return net__tls_fail(-ENOMEM, "TLS context");
    }
    c->role = role;
    c->verify =
        role == NET_TLS_CLIENT ? NET_TLS_VERIFY_PEER : NET_TLS_VERIFY_NONE;
    atomic_init(&c->refs, 1);
    /* Partial writes let a send step count each record as it goes; the
     * buffer moves because a retried send resumes past what went out.
     * Idle connections hold no record buffers. */
    SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION);
    /* Without read-ahead OpenSSL reads each record in two recv calls, its
     * 5-byte header and then its body, and a small message costs three
     * (the third says EAGAIN); with it, one call takes whatever the
     * kernel holds.  A step always asks OpenSSL before it waits, and
     * OpenSSL wants more only after a recv said EAGAIN, so the records it
     * keeps never wait for an edge that has passed; an op that ends while
     * they are there wakes the other reader (tls_pending). */
    SSL_CTX_set_read_ahead(c->ctx, 1);
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    apply_verify(c);
    if (role == NET_TLS_CLIENT && !SSL_CTX_set_default_verify_paths(c->ctx)) {
        net__tls_config_unref(c);
        return net__tls_fail(NET_ETLSCONFIG, "system CA store");
    }
    if (role == NET_TLS_SERVER) {
        SSL_CTX_set_tlsext_servername_callback(c->ctx, on_servername);
        SSL_CTX_set_tlsext_servername_arg(c->ctx, c);
    }
    *out = c;
    return 0;
}

void net__tls_config_unref(net_tls_config *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    for (int i = 0; i < c->nsni; i++) {
        X509_free(c->sni[i].leaf);
        EVP_PKEY_free(c->sni[i].key);
        sk_X509_pop_free(c->sni[i].chain, X509_free);
    }
    free(c->sni);
    free(c->alpn);
    SSL_CTX_free(c->ctx);
    free(c);
}

void net_tls_config_free(net_tls_config *c)
{
    if (c) net__tls_config_unref(c);
}

/* Reads a leaf, the rest of its chain and the key from two PEM BIOs. */
static int load(net_tls_config *c, BIO *cb, BIO *kb)
{
    net__tls_cert k = {NULL, NULL, NULL};
    X509 *x;
    if (!cb || !kb) return net__tls_fail(NET_ETLSCONFIG, "certificate");
    if (!(k.leaf = PEM_read_bio_X509(cb, NULL, NULL, NULL)))
        return net__tls_fail(NET_ETLSCONFIG, "certificate");
    if (!(k.chain = sk_X509_new_null())) goto fail;
    while ((x = PEM_read_bio_X509(cb, NULL, NULL, NULL)))
        if (!sk_X509_push(k.chain, x)) {
            X509_free(x);
            goto fail;
        }
    ERR_clear_error(); /* the end of the file */
    if (!(k.key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL))) goto fail;
    if (!X509_check_private_key(k.leaf, k.key)) goto fail;
    if (!c->has_cert) {
        if (!SSL_CTX_use_cert_and_key(c->ctx, k.leaf, k.key, k.chain, 1))
            goto fail;
        c->has_cert = 1;
        X509_free(k.leaf);
        EVP_PKEY_free(k.key);
        sk_X509_pop_free(k.chain, X509_free);
        return 0;
    }
    net__tls_cert *more = realloc(c->sni, (size_t)(c->nsni + 1) * sizeof *more);
    if (!more) goto fail;
    c->sni = more;
    c->sni[c->nsni++] = k;
    return 0;
fail:
    X509_free(k.leaf);
    EVP_PKEY_free(k.key);
    sk_X509_pop_free(k.chain, X509_free);
    return net__tls_fail(NET_ETLSCONFIG, "certificate or key");
}

int net_tls_config_cert_file(net_tls_config *c, const char *chain,
                             const char *key)
{
    if (!c || !chain || !key) return -EINVAL;
    BIO *cb = BIO_new_file(chain, "r"), *kb = BIO_new_file(key, "r");
    int rc = load(c, cb, kb);
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

int net_tls_config_cert_mem(net_tls_config *c, const char *chain,
                            size_t chain_len, const char *key, size_t key_len)
{
    if (!c || !chain || !key || chain_len > INT32_MAX || key_len > INT32_MAX)
        return -EINVAL;
    BIO *cb = BIO_new_mem_buf(chain, (int)chain_len);
    BIO *kb = BIO_new_mem_buf(key, (int)key_len);
    int rc = load(c, cb, kb);
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

int net_tls_config_ca(net_tls_config *c, const char *file, const char *dir)
{
    if (!c || (!file && !dir)) return -EINVAL;
    X509_STORE *st = X509_STORE_new();
    if (!st) return -ENOMEM;
    SSL_CTX_set_cert_store(c->ctx, st); /* the context owns it now */
    if (!SSL_CTX_load_verify_locations(c->ctx, file, dir))
        return net__tls_fail(NET_ETLSCONFIG, "CA certificates");
    return 0;
}

int net_tls_config_verify(net_tls_config *c, int mode)
{
    if (!c || mode < NET_TLS_VERIFY_NONE || mode > NET_TLS_VERIFY_CHAIN)
        return -EINVAL;
    c->verify = mode;
    apply_verify(c);
    return 0;
}

int net_tls_config_versions(net_tls_config *c, int min, int max)
{
    int ok = min == NET_TLS1_2 || min == NET_TLS1_3;
    if (!c || !ok || (max && max != NET_TLS1_2 && max != NET_TLS1_3) ||
        (max && max < min))
        return -EINVAL;
    if (!SSL_CTX_set_min_proto_version(c->ctx, min) ||
        !SSL_CTX_set_max_proto_version(c->ctx, max))
        return net__tls_fail(NET_ETLSCONFIG, "TLS versions");
    return 0;
}

int net_tls_config_alpn(net_tls_config *c, const char *protos)
{
    if (!c || !protos || !*protos) return -EINVAL;
    size_t n = strlen(protos);
    unsigned char *w = malloc(n + 1);
    if (!w) return -ENOMEM;
    /* "a,bc" becomes "\1a\2bc": each name after its length. */
    size_t at = 0;
    for (const char *p = protos;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!len || len > 255) {
            free(w);
            return -EINVAL;
        }
        w[at++] = (unsigned char)len;
        memcpy(w + at, p, len);
        at += len;
        if (!e) break;
        p = e + 1;
    }
    free(c->alpn);
    c->alpn = w;
    c->alpn_len = (unsigned)at;
    if (c->role == NET_TLS_SERVER) {
        SSL_CTX_set_alpn_select_cb(c->ctx, on_alpn, c);
        return 0;
    }
    /* 0 is success here, as OpenSSL documents. */
    if (SSL_CTX_set_alpn_protos(c->ctx, w, c->alpn_len) != 0)
        return net__tls_fail(NET_ETLSCONFIG, "ALPN");
    return 0;
}

int net_tls_config_ciphers(net_tls_config *c, const char *tls12,
                           const char *tls13)
{
    if (!c) return -EINVAL;
    if (tls12 && !SSL_CTX_set_cipher_list(c->ctx, tls12))
        return net__tls_fail(NET_ETLSCONFIG, "TLS 1.2 ciphers");
    if (tls13 && !SSL_CTX_set_ciphersuites(c->ctx, tls13))
        return net__tls_fail(NET_ETLSCONFIG, "TLS 1.3 cipher suites");
    return 0;
}
