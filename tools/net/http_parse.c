/* The request parser of socketloop-http; see http_parse.h.  MIT licence,
 * see LICENSE. */
#include "http_parse.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* A slice of a line. */
typedef struct span {
    const char *p;
    size_t n;
} span;

static int span_is(span s, const char *lit)
{
    return s.n == strlen(lit) && !memcmp(s.p, lit, s.n);
}

static int span_ieq(span s, const char *lit)
{
    return s.n == strlen(lit) && !strncasecmp(s.p, lit, s.n);
}

static span span_trim(span s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) s.p++, s.n--;
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
    return s;
}

/* Splits off the text up to the first `sep` (exclusive); the rest follows
 * it.  Returns 0 when there is no separator. */
static int span_split(span s, char sep, span *head, span *rest)
{
    const char *q = memchr(s.p, sep, s.n);
    if (!q) return 0;
    head->p = s.p;
    head->n = (size_t)(q - s.p);
    rest->p = q + 1;
    rest->n = s.n - head->n - 1;
    return 1;
}

/* Does a comma-separated header value list `token`? */
static int has_token(span v, const char *token)
{
    span item, rest;
    while (v.n) {
        if (!span_split(v, ',', &item, &rest)) {
            item = v;
            rest.p = v.p + v.n;
            rest.n = 0;
        }
        if (span_ieq(span_trim(item), token)) return 1;
        v = rest;
    }
    return 0;
}

/* A header name is a token (RFC 9110): a name with a space, as in a line
 * that continues the previous one (obsolete folding), must not slip a
 * header such as Content-Length past the checks below. */
static int is_token(span s)
{
    static const char other[] = "!#$%&'*+-.^_`|~";
    for (size_t i = 0; i < s.n; i++)
        if (!isalnum((unsigned char)s.p[i]) &&
            (!s.p[i] || !strchr(other, s.p[i])))
            return 0;
    return s.n > 0;
}

static int fail(http_req *r, const char *status)
{
    r->status = status;
    return HTTP_ERROR;
}

void http_start(http_req *r)
{
    memset(r, 0, sizeof *r);
}

static int request_line(http_req *r, span l)
{
    span method, target, version;
    if (!l.n) return ++r->blank > HTTP_MAX_BLANK ? HTTP_QUIT : HTTP_MORE;
    r->started = 1;
    if (!span_split(l, ' ', &method, &target) ||
        !span_split(target, ' ', &target, &version) || !method.n || !target.n ||
        memchr(version.p, ' ', version.n))
        return fail(r, "400 Bad Request");
    if (span_is(version, "HTTP/1.0"))
        r->http10 = 1;
    else if (!span_is(version, "HTTP/1.1"))
        return fail(r, "505 HTTP Version Not Supported");
    r->method = span_is(method, "GET")    ? HTTP_GET
                : span_is(method, "HEAD") ? HTTP_HEAD
                : span_is(method, "POST") ? HTTP_POST
                                          : HTTP_OTHER;
    return HTTP_MORE;
}

static void header(http_req *r, span h)
{
    span name, value;
    if (!span_split(h, ':', &name, &value) || !is_token(name)) {
        r->bad = 1;
        return;
    }
    value = span_trim(value);
    if (span_ieq(name, "connection")) {
        r->close |= has_token(value, "close");
        r->alive |= has_token(value, "keep-alive");
    } else if (span_ieq(name, "content-length")) {
        /* Digits only.  Past HTTP_MAX_BODY the value stops growing: any
         * larger length is too large, however many digits it has. */
        long v = 0;
        if (!value.n || r->seen_length) r->bad = 1;
        for (size_t i = 0; i < value.n; i++) {
            if (!isdigit((unsigned char)value.p[i]))
                r->bad = 1;
            else if (v <= HTTP_MAX_BODY)
                v = v * 10 + (value.p[i] - '0');
        }
        r->length = v;
        r->seen_length = 1;
    } else if (span_ieq(name, "transfer-encoding")) {
        r->chunked = 1;
    }
}

int http_line(http_req *r, const char *p, size_t n)
{
    span l = {p, n};
    if (!r->started) return request_line(r, l);
    if (n) {
        if (++r->headers > HTTP_MAX_HEADERS)
            return fail(r, "431 Request Header Fields Too Large");
        header(r, l);
        return HTTP_MORE;
    }
    if (r->bad) return fail(r, "400 Bad Request");
    if (r->chunked) return fail(r, "501 Not Implemented");
    if (r->length > HTTP_MAX_BODY) return fail(r, "413 Content Too Large");
    /* "close" wins, wherever it comes; HTTP/1.0 stays open only when
     * asked to. */
    r->keep_alive = !r->close && (!r->http10 || r->alive);
    return HTTP_READY;
}

int http_too_long(http_req *r)
{
    return fail(r, r->started ? "431 Request Header Fields Too Large"
                              : "414 URI Too Long");
}

const char *http_answer(const http_req *r)
{
    if (r->method == HTTP_OTHER)
        return r->keep_alive ? "HTTP/1.1 405 Method Not Allowed\r\n"
                               "Allow: GET, HEAD, POST\r\n"
                               "Content-Length: 0\r\n\r\n"
                             : "HTTP/1.1 405 Method Not Allowed\r\n"
                               "Allow: GET, HEAD, POST\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n";
    if (!r->keep_alive)
        return r->method == HTTP_HEAD
                   ? "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     "Content-Length: 6\r\nConnection: close\r\n\r\n"
                   : "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     "Content-Length: 6\r\nConnection: close\r\n\r\nhello\n";
    if (r->http10)
        return r->method == HTTP_HEAD
                   ? "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     "Content-Length: 6\r\nConnection: keep-alive\r\n\r\n"
                   : "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     "Content-Length: 6\r\nConnection: keep-alive\r\n\r\n"
                     "hello\n";
    return r->method == HTTP_HEAD
               ? "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                 "Content-Length: 6\r\n\r\n"
               : "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                 "Content-Length: 6\r\n\r\nhello\n";
}
