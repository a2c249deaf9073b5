/* Fault injection inside OpenSSL for the TLS fault walk (fault_tls.c):
 * OpenSSL's own allocations, through CRYPTO_set_mem_functions, and the
 * library's calls of a few SSL_* functions, wrapped with -Wl,--wrap like
 * the libc sites of fault.h (a call made inside the shared libssl is not
 * wrapped; ours, from the static library, are). */
#ifndef SL_FAULT_TLS_H
#define SL_FAULT_TLS_H

enum {
    FT_CRYPTO_MALLOC,  /* OpenSSL's malloc (and the malloc of a realloc) */
    FT_CRYPTO_REALLOC, /* OpenSSL's realloc of a live block */
    FT_SSL_CTX_NEW,
    FT_SSL_NEW,
    FT_SSL_DO_HANDSHAKE,
    FT_SSL_READ_EX,
    FT_SSL_WRITE_EX,
    FT_NSITES
};

extern const char *const ft_site_name[FT_NSITES];

/* Installs the counting memory functions; must run before OpenSSL
 * allocates anything, so first in main.  0, or -1 if OpenSSL refused. */
int ft_install(void);
/* Counts every site's calls from zero; call nth (> 0) of site fails (0:
 * none).  A failed SSL_* call returns failure with an error pushed on
 * OpenSSL's queue, as OpenSSL's own would. */
void ft_arm(int site, long nth);
void ft_disarm(void);
long ft_calls(int site);
int ft_hit(void);

#endif
