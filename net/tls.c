/* TLS on a net_sock (socketloop/tls.h): a transport (net/internal.h)
 * whose read and write are SSL_read and SSL_write, so that every step of
 * the net layer (recv, send, the buffered patterns) goes through TLS
 * unchanged.  OpenSSL talks to the descriptor through a BIO of ours that
 * sends with MSG_NOSIGNAL (a write to a peer that left must not raise
 * SIGPIPE) and tells OpenSSL when the TCP stream has ended.
 *
 * When OpenSSL wants the socket readable or writable, the step waits for
 * that event, whichever direction the op is: a read that must first
 * write (a TLS 1.3 KeyUpdate answer) waits for NET_OUT in the read slot,
 * and the poller's event for NET_OUT finds it there.  OpenSSL's error
 * queue belongs to the OS thread, which the green threads share: every
 * call empties it first and reads it before anything can switch. */
#include "tls_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct tls_sock {
    SSL *ssl;
    net_sock *s;
    net_tls_config *cfg;
    int want[2];   /* per direction: what the last -EAGAIN waits for */
    int eof;       /* the TCP stream has ended */
    int sys_errno; /* the last error of the descriptor */
    int fatal;     /* a failure that every later call returns, or 0 */
    /* Made only when asked for, since every idle connection holds this
     * structure: */
    char *text; /* the failure's text, or NULL */
    char *alpn; /* the ALPN protocol agreed on, NUL-terminated, or NULL */
} tls_sock;

/* --- The BIO on the descriptor ------------------------------------------ */

static int bio_write(BIO *b, const char *data, int n)
{
    tls_sock *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t r = send(t->s->w.fd, data, (size_t)n, MSG_NOSIGNAL);
        if (r >= 0) {
            return (int)r;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_write(b);
        else
            t->sys_errno = errno;
        return -1;
    }
}

static int bio_read(BIO *b, char *buf, int n)
{
    tls_sock *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t r = recv(t->s->w.fd, buf, (size_t)n, 0);
        if (r > 0) return (int)r;
        if (r == 0) {
            t->eof = 1;
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_read(b);
        else
            t->sys_errno = errno;
        return -1;
    }
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    const tls_sock *t = BIO_get_data(b);
    if (cmd == BIO_CTRL_FLUSH) return 1;
    /* OpenSSL asks this to tell a truncation from a failed read. */
    if (cmd == BIO_CTRL_EOF) return t && t->eof;
    return 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *bio_method;

/* Freed when the program exits or the object holding the library (a Lua
 * module) is unloaded, which would otherwise lose the pointer. */
__attribute__((destructor)) static void bio_method_free(void)
{
    BIO_meth_free(bio_method);
    bio_method = NULL;
}

static void bio_method_make(void)
{
    BIO_METHOD *m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "socketloop");
    if (!m || !BIO_meth_set_write(m, bio_write) ||
        !BIO_meth_set_read(m, bio_read) || !BIO_meth_set_ctrl(m, bio_ctrl) ||
        !BIO_meth_set_create(m, bio_create)) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m;
}

/* --- Results ------------------------------------------------------------ */

/* Empties OpenSSL's error queue before a call whose failure reads it.
 * The queue is almost always empty already (every failure here clears
 * what it read), and a peek costs far less than ERR_clear_error, which in
 * OpenSSL 3.0 resets all 16 slots and frees two strings in each: three
 * clears per echoed message were ~2% of a TLS echo server's CPU. */
static void clear_errors(void)
{
    if (ERR_peek_error()) ERR_clear_error();
}

/* Remembers a failure for every later call, with its text. */
static int fatal(tls_sock *t, int code, const char *text)
{
    t->fatal = code;
    free(t->text);
    t->text = strdup(text); /* without it, later calls say only the code */
    gt__set_detail(code, text);
    return code;
}

/* The code and text of a failure that OpenSSL's queue describes. */
static int protocol_error(tls_sock *t)
{
    unsigned long e = ERR_peek_error();
    int reason = ERR_GET_REASON(e);
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    char text[200];
    int code = NET_ETLS;
    if (!why) why = "protocol failure";
    if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
        reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        long v = SSL_get_verify_result(t->ssl);
        snprintf(text, sizeof text, "%s: %s", why,
                 X509_verify_cert_error_string(v));
        code = NET_ETLSVERIFY;
    } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
               reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        snprintf(text, sizeof text, "certificate verify failed: %s", why);
        code = NET_ETLSVERIFY;
    } else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
               reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        snprintf(text, sizeof text,
                 "TLS: %s (the peer closed without close_notify)", why);
        code = NET_ETLSTRUNC;
    } else {
        snprintf(text, sizeof text, "TLS: %s", why);
    }
    ERR_clear_error();
    return fatal(t, code, text);
}

/* What a failed SSL call in direction dir (0 read or handshake, 1 write)
 * means: -EAGAIN with t->want set, 0 (a read at a clean end), or an
 * error. */
static int failed(tls_sock *t, int dir, int ret)
{
    switch (SSL_get_error(t->ssl, ret)) {
    case SSL_ERROR_WANT_READ: t->want[dir] = NET__WAIT_IN; return -EAGAIN;
    case SSL_ERROR_WANT_WRITE: t->want[dir] = NET__WAIT_OUT; return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN: return dir ? -EPIPE : 0;
    case SSL_ERROR_SYSCALL:
        if (t->sys_errno) {
            t->fatal = -t->sys_errno;
            ERR_clear_error();
            return t->fatal;
        }
        if (ERR_peek_error()) return protocol_error(t);
        return fatal(t, NET_ETLSTRUNC,
                     "TLS: the peer closed without close_notify");
    default: return protocol_error(t);
    }
}

static int again(tls_sock *t)
{
    if (t->fatal < 0 && t->text) gt__set_detail(t->fatal, t->text);
    return t->fatal;
}

/* --- The transport -------------------------------------------------------- */

/* A write of the descriptor that failed for good (ECONNRESET, EPIPE) in a
 * call that OpenSSL still reports as a success: a TLS 1.3 server writes
 * its session tickets inside the first SSL_write or SSL_read and goes on
 * when that write fails, and its records that follow then reach the peer
 * out of sequence (the fault walk saw "bad record mac" there).  The
 * connection is lost: the call and every later one return the error. */
static int lost(tls_sock *t)
{
    ERR_clear_error();
    t->fatal = -t->sys_errno;
    return t->fatal;
}

static ssize_t tls_read(net_sock *s, void *buf, size_t n)
{
    tls_sock *t = s->tp_state;
    size_t got;
    if (t->fatal) return again(t);
    clear_errors();
    if (!SSL_read_ex(t->ssl, buf, n, &got)) return failed(t, 0, 0);
    if (t->sys_errno) return lost(t);
    s->in += (uint64_t)got;
    return (ssize_t)got;
}

static ssize_t tls_write(net_sock *s, const void *buf, size_t n)
{
    tls_sock *t = s->tp_state;
    size_t put;
    if (t->fatal) return again(t);
    clear_errors();
    if (!SSL_write_ex(t->ssl, buf, n, &put)) return failed(t, 1, 0);
    if (t->sys_errno) return lost(t);
    s->out += (uint64_t)put;
    return (ssize_t)put;
}

static int tls_want(const net_sock *s, int dir)
{
    const tls_sock *t = s->tp_state;
    return t->want[dir];
}

/* Decrypted bytes, or records read ahead and not yet decrypted. */
static int tls_pending(const net_sock *s)
{
    const tls_sock *t = s->tp_state;
    return SSL_has_pending(t->ssl);
}

static int tls_handshake(net_sock *s)
{
    tls_sock *t = s->tp_state;
    if (t->fatal) return again(t);
    clear_errors();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        /* The handshake's crypto ran deep on this green thread's stack,
         * and a connection then mostly parks for long in a shallow read:
         * the pages it left would stay resident per connection (idle TLS
         * connections cost ~2 pages more than the epoll+OpenSSL
         * reference).  One madvise per handshake, cheap beside it. */
        gt__stack_release_below();
        return 0;
    }
    r = failed(t, 0, r);
    /* A handshake that meets the end of the stream was cut short. */
    return r == 0 ? fatal(t, NET_ETLSTRUNC,
                          "TLS: the peer closed during "
                          "the handshake")
                  : r;
}

/* close_notify, once, if the socket takes it now; never waits.  OpenSSL
 * forbids it after a fatal error, and it means nothing before the
 * handshake has ended. */
static int tls_shutdown(net_sock *s)
{
    tls_sock *t = s->tp_state;
    if (t->fatal || !SSL_is_init_finished(t->ssl)) return 0;
    if (SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN) return 0;
    clear_errors();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    return 0;
}

static void tls_free(net_sock *s)
{
    tls_sock *t = s->tp_state;
    SSL_free(t->ssl);
    net__tls_config_unref(t->cfg);
    free(t->text);
    free(t->alpn);
    free(t);
    s->tp_state = NULL;
}

static const net__transport tls_transport = {
    tls_read,      tls_write,    tls_want, tls_pending,
    tls_handshake, tls_shutdown, tls_free};

/* --- Public calls -----------------------------------------------------------
 */

static int is_ip(const char *name)
{
    unsigned char a[16];
    return inet_pton(AF_INET, name, a) == 1 ||
           inet_pton(AF_INET6, name, a) == 1;
}

/* Sends name as SNI and checks it in the certificate, as the
 * configuration says. */
static int set_name(SSL *ssl, const net_tls_config *c, const char *name)
{
    int check = c->verify == NET_TLS_VERIFY_PEER;
    if (is_ip(name))
        return !check ||
               X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    return SSL_set_tlsext_host_name(ssl, name) &&
           (!check || SSL_set1_host(ssl, name));
}

int net_tls_attach(net_sock *s, net_tls_config *c, const char *name)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (!s || !c) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    if (s->closed) return NET_ECLOSED;
    if (s->tp || s->rlen) return -EBUSY;
    if (c->role == NET_TLS_CLIENT && c->verify == NET_TLS_VERIFY_PEER && !name)
        return -EINVAL;
    pthread_once(&once, bio_method_make);
    if (!bio_method) return -ENOMEM;
    tls_sock *t = calloc(1, sizeof *t);
    if (!t) return -ENOMEM;
    clear_errors();
    BIO *b = NULL;
    if (!(t->ssl = SSL_new(c->ctx)) || !(b = BIO_new(bio_method))) goto fail;
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b);
    if (c->role == NET_TLS_SERVER)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    if (name && c->role == NET_TLS_CLIENT && !set_name(t->ssl, c, name))
        goto fail;
    t->s = s;
    t->cfg = c;
    atomic_fetch_add(&c->refs, 1);
    /* The marks of plain reads say nothing of what TLS holds. */
    s->w.dry[0] = s->w.dry[1] = 0;
    s->tp_state = t;
    s->tp = &tls_transport;
    return 0;
fail:
    SSL_free(t->ssl); /* and the BIO, once set */
    free(t);
    return net__tls_fail(-ENOMEM, "TLS session");
}

int net_tls_handshake(net_sock *s, int64_t deadline)
{
    net_op op = {
        .kind = NET_OP_HANDSHAKE, .s = s, .deadline = deadline, .idle = -1};
    return (int)net_op_run(&op);
}

int net_tls_start(net_sock *s, net_tls_config *c, const char *name,
                  int64_t deadline)
{
    int rc = net_tls_attach(s, c, name);
    return rc < 0 ? rc : net_tls_handshake(s, deadline);
}

/* The socket's TLS state, for the calls that read it. */
static tls_sock *tls_of(net_sock *s)
{
    if (!s || net__alien(s) || s->closed || s->tp != &tls_transport)
        return NULL;
    return s->tp_state;
}

void *net_tls_ssl(net_sock *s)
{
    tls_sock *t = tls_of(s);
    return t ? t->ssl : NULL;
}

const char *net_tls_version(net_sock *s)
{
    tls_sock *t = tls_of(s);
    return t ? SSL_get_version(t->ssl) : NULL;
}

const char *net_tls_cipher(net_sock *s)
{
    tls_sock *t = tls_of(s);
    return t ? SSL_get_cipher_name(t->ssl) : NULL;
}

const char *net_tls_alpn(net_sock *s)
{
    tls_sock *t = tls_of(s);
    const unsigned char *p;
    unsigned n;
    if (!t) return NULL;
    if (t->alpn) return t->alpn;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (!n || !(t->alpn = malloc(n + 1))) return NULL;
    memcpy(t->alpn, p, n);
    t->alpn[n] = 0;
    return t->alpn;
}

int net_tls_peer_subject(net_sock *s, char *buf, size_t n)
{
    tls_sock *t = tls_of(s);
    if (!t || !buf || !n || n > INT32_MAX) return -EINVAL;
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    if (!x) return -ENOENT;
    X509_NAME_oneline(X509_get_subject_name(x), buf, (int)n);
    return 0;
}

int net_tls_peer_cert(net_sock *s, net_buf *out)
{
    tls_sock *t = tls_of(s);
    if (!t || !out) return -EINVAL;
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    if (!x) return -ENOENT;
    BIO *m = BIO_new(BIO_s_mem());
    char *pem;
    if (!m || !PEM_write_bio_X509(m, x)) {
        BIO_free(m);
        return -ENOMEM;
    }
    long len = BIO_get_mem_data(m, &pem);
    int rc = 0;
    if (out->cap - out->len < (size_t)len) {
        char *d = realloc(out->data, out->len + (size_t)len);
        if (!d) rc = -ENOMEM;
        if (d) out->data = d, out->cap = out->len + (size_t)len;
    }
    if (rc == 0) {
        memcpy(out->data + out->len, pem, (size_t)len);
        out->len += (size_t)len;
    }
    BIO_free(m);
    return rc;
}
