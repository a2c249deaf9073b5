/* socketloop net layer: TLS on a net_sock, over OpenSSL.  MIT licence, see
 * LICENSE.
 *
 * A configuration object says who this end is and what it trusts; TLS is
 * then started on a connected socket, client or server side, and from
 * there on net_recv, net_send, net_receive (every pattern), net_shutdown
 * and net_close go through TLS with the contract of net.h: deadlines,
 * cancellation, a close that wakes waiters, the fairness quantum, one
 * reader and one writer waiting at once (also while TLS needs the other
 * direction: a read that must write, a write that must read).
 *
 * - End of stream is the peer's close_notify: net_recv returns 0 and the
 *   patterns NET_EEOF, as for a plain socket.  A peer that ends the TCP
 *   stream without one gives NET_ETLSTRUNC: the data may have been cut.
 * - net_close sends close_notify if the socket can take it at once (it
 *   never parks); net_shutdown(SHUT_WR or SHUT_RDWR) sends it, then shuts
 *   the TCP side.  net_release gives the descriptor back without it.
 * - Renegotiation is refused (TLS 1.2 and earlier; TLS 1.3 has none).
 * - OpenSSL's buffers are released while a connection is idle.
 * - Errors: NET_ETLS* codes below, or -errno (-ECONNRESET, -EPIPE) from
 *   the TCP side.  net_strerror of the latest such code on this OS thread
 *   carries OpenSSL's reason, as "certificate verify failed: hostname
 *   mismatch"; the code alone says which family it is.
 * - A net_send on TLS that times out or is cancelled part-way leaves the
 *   connection's write side in an unknown state (a record may be half
 *   out): close it, as Go's crypto/tls requires after a write deadline.
 *
 * This header is installed and included from socketloop.h only when the
 * library is built with TLS (SOCKETLOOP_HAS_TLS is 1 then). */
#ifndef SOCKETLOOP_TLS_H
#define SOCKETLOOP_TLS_H

#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NET_ETLS (-4320)       /* TLS failed: protocol, alert, handshake */
#define NET_ETLSVERIFY (-4321) /* the peer's certificate was refused */
#define NET_ETLSTRUNC (-4322)  /* TCP ended without close_notify */
#define NET_ETLSCONFIG (-4323) /* a certificate, key or CA did not load */

typedef struct net_tls_config net_tls_config;

#define NET_TLS_CLIENT 0
#define NET_TLS_SERVER 1

/* Verification (net_tls_config_verify). */
#define NET_TLS_VERIFY_NONE 0 /* accept any peer (no certificate check) */
/* Client: the chain against the CAs and the server's name against the
 * name given to net_tls_attach (the default).  Server: ask for a client
 * certificate and check it if one comes. */
#define NET_TLS_VERIFY_PEER 1
/* Client: the chain only, any name (LuaSec's "peer").  Server: as PEER,
 * and a client without a certificate fails. */
#define NET_TLS_VERIFY_CHAIN 2
#define NET_TLS_VERIFY_REQUIRE NET_TLS_VERIFY_CHAIN

#define NET_TLS1_2 0x0303
#define NET_TLS1_3 0x0304

/* A configuration for one role: clients verify the peer by default
 * against the system's CAs, with TLS 1.2 at least.  It may be shared by
 * any number of sockets of any OS thread once set up (set it up first);
 * net_tls_config_free drops the caller's hold, and sockets keep theirs
 * until they close.  -EINVAL for a bad role, -ENOMEM, NET_ETLSCONFIG. */
GT_API int net_tls_config_new(net_tls_config **out, int role);
GT_API void net_tls_config_free(net_tls_config *c);

/* This end's certificate chain (PEM, leaf first) and private key, from
 * files or from memory.  A server may be given several: the first is
 * used unless a client's SNI name matches the names of a later one.
 * NET_ETLSCONFIG (text: OpenSSL's reason) when one does not load or the
 * key does not match. */
GT_API int net_tls_config_cert_file(net_tls_config *c, const char *chain,
                                    const char *key);
GT_API int net_tls_config_cert_mem(net_tls_config *c, const char *chain,
                                   size_t chain_len, const char *key,
                                   size_t key_len);
/* The CAs to trust instead of the system's: a PEM file, a hashed
 * directory (c_rehash), or both; NULL for either leaves it out. */
GT_API int net_tls_config_ca(net_tls_config *c, const char *file,
                             const char *dir);
GT_API int net_tls_config_verify(net_tls_config *c, int mode);
/* Versions, NET_TLS1_2 or NET_TLS1_3; max 0 for the newest. */
GT_API int net_tls_config_versions(net_tls_config *c, int min, int max);
/* ALPN protocols, in order of preference, separated by commas
 * ("h2,http/1.1").  A server picks the first of its own that the client
 * offers, and goes on without ALPN if none is. */
GT_API int net_tls_config_alpn(net_tls_config *c, const char *protos);
/* Cipher lists: OpenSSL's syntax for TLS 1.2 (NULL: its default) and
 * the TLS 1.3 suites ("TLS_AES_128_GCM_SHA256"; NULL: the default). */
GT_API int net_tls_config_ciphers(net_tls_config *c, const char *tls12,
                                  const char *tls13);

/* Gives the connected socket s TLS with configuration c, without I/O:
 * the handshake happens in net_tls_handshake, or in the first read or
 * write.  name is the server's name: sent as SNI unless it is an IP
 * address, and checked against the certificate (NET_TLS_VERIFY_PEER); a
 * verifying client without a name gets -EINVAL.  Servers pass NULL.
 * -EBUSY if s has TLS already or bytes buffered (net_buffered). */
GT_API int net_tls_attach(net_sock *s, net_tls_config *c, const char *name);
/* Runs the handshake until done, the deadline (-ETIMEDOUT), or a failure
 * (NET_ETLS*, -errno).  After a failure the socket is only for closing. */
GT_API int net_tls_handshake(net_sock *s, int64_t deadline);
/* net_tls_attach, then net_tls_handshake. */
GT_API int net_tls_start(net_sock *s, net_tls_config *c, const char *name,
                         int64_t deadline);

/* After the handshake: "TLSv1.3", "TLS_AES_128_GCM_SHA256", the ALPN
 * protocol agreed on (NULL when none, or when its copy, made on the first
 * call, finds no memory), the peer's certificate appended
 * to out in PEM (-ENOENT when it sent none), its subject in OpenSSL's
 * one-line form.  NULL, or -EINVAL, for a socket without TLS. */
GT_API const char *net_tls_version(net_sock *s);
GT_API const char *net_tls_cipher(net_sock *s);
GT_API const char *net_tls_alpn(net_sock *s);
GT_API int net_tls_peer_cert(net_sock *s, net_buf *out);
GT_API int net_tls_peer_subject(net_sock *s, char *buf, size_t n);
/* The socket's OpenSSL SSL object, for what these calls lack; NULL
 * without TLS.  Reading from or writing to it directly breaks the
 * socket's own calls. */
GT_API void *net_tls_ssl(net_sock *s);

#ifdef __cplusplus
}
#endif

#endif
