/* The request parser of socketloop-http, apart from its sockets, so that a
 * fuzz target can drive it with plain bytes.  MIT licence, see LICENSE.
 *
 * The server reads a request one line at a time with
 * net_receive(NET_LINE), which drops the LF and every CR and bounds the
 * line by HTTP_MAX_LINE, and hands each line to http_line, which says what
 * to do next.  The parser keeps no pointer into a line: the server reads
 * every line into the same buffer. */
#ifndef SLTOOLS_HTTP_PARSE_H
#define SLTOOLS_HTTP_PARSE_H

#include <stddef.h>

#define HTTP_MAX_LINE 8192 /* request line or header line */
#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_BODY (1 << 20)
#define HTTP_MAX_BLANK 8 /* empty lines tolerated before a request */

/* What http_line asks for next. */
enum {
    HTTP_MORE,  /* another line */
    HTTP_READY, /* the head is complete: drop `length` bytes of body, then
                   send http_answer */
    HTTP_ERROR, /* send the error `status` and close */
    HTTP_QUIT   /* close without an answer */
};

enum { HTTP_GET = 1, HTTP_HEAD, HTTP_POST, HTTP_OTHER };

typedef struct http_req {
    int started;        /* the request line has come */
    int blank;          /* empty lines before it */
    int method;         /* HTTP_GET ... HTTP_OTHER */
    int http10;         /* HTTP/1.0, else HTTP/1.1 */
    int close, alive;   /* Connection: close, Connection: keep-alive */
    int keep_alive;     /* when READY: the connection stays open */
    int headers;        /* header lines so far */
    int bad, chunked;   /* a malformed header; a Transfer-Encoding */
    int seen_length;    /* a Content-Length came */
    long length;        /* its value */
    const char *status; /* when ERROR: e.g. "400 Bad Request" */
} http_req;

/* Starts a request. */
void http_start(http_req *r);
/* Takes the next line (n bytes, no LF, no CR). */
int http_line(http_req *r, const char *p, size_t n);
/* The line was longer than HTTP_MAX_LINE: returns HTTP_ERROR, with 414
 * for the request line and 431 for a header. */
int http_too_long(http_req *r);
/* The whole answer to a request that http_line found READY. */
const char *http_answer(const http_req *r);

#endif
