/* Pairing heap of deadlines (Fredman, Sedgewick, Sleator and Tarjan).
 * Nodes are embedded in green threads, so timers never allocate. */
#include "heap.h"

#include <stddef.h>

static int less(const gt__hnode *a, const gt__hnode *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

/* Links two detached heaps; the larger root becomes the first child. */
static gt__hnode *meld(gt__hnode *a, gt__hnode *b)
{
    if (!a) return b;
    if (!b) return a;
    if (less(b, a)) {
        gt__hnode *t = a;
        a = b;
        b = t;
    }
    b->prev = a;
    b->next = a->child;
    if (a->child) a->child->prev = b;
    a->child = b;
    return a;
}

/* The two-pass merge that gives the heap its amortised bounds: meld
 * siblings in pairs left to right, then fold the pairs right to left. */
static gt__hnode *merge_pairs(gt__hnode *first)
{
    gt__hnode *pairs = NULL, *result = NULL;
    while (first) {
        gt__hnode *a = first, *b = a->next;
        first = b ? b->next : NULL;
        a->next = a->prev = NULL;
        if (b) b->next = b->prev = NULL;
        gt__hnode *m = meld(a, b);
        m->next = pairs;
        pairs = m;
    }
    while (pairs) {
        gt__hnode *n = pairs->next;
        pairs->next = NULL;
        result = meld(result, pairs);
        pairs = n;
    }
    return result;
}

gt__hnode *gt__heap_insert(gt__hnode *root, gt__hnode *n)
{
    n->child = n->next = n->prev = NULL;
    return meld(root, n);
}

gt__hnode *gt__heap_remove(gt__hnode *root, gt__hnode *n)
{
    gt__hnode *sub = merge_pairs(n->child);
    n->child = NULL;
    if (n == root) return sub;
    if (n->prev->child == n)
        n->prev->child = n->next; /* n was a first child */
    else
        n->prev->next = n->next;
    if (n->next) n->next->prev = n->prev;
    n->next = n->prev = NULL;
    return meld(root, sub);
}
