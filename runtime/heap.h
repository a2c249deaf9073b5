/* The pairing heap that orders deadlines (runtime/heap.c). */
#ifndef GT_HEAP_H
#define GT_HEAP_H

#include <stdint.h>

/* Pairing-heap node: insert is O(1), removal O(log n) amortised, and no
 * memory is allocated, so timers cost nothing on the park path. */
typedef struct gt__hnode {
    struct gt__hnode *child; /* first child */
    struct gt__hnode *next;  /* next sibling */
    struct gt__hnode *prev;  /* previous sibling, or parent if first */
    int64_t key;             /* deadline in ms */
    uint64_t seq;            /* tie-break: equal deadlines fire FIFO */
} gt__hnode;

/* Both return the new root. */
gt__hnode *gt__heap_insert(gt__hnode *root, gt__hnode *n);
gt__hnode *gt__heap_remove(gt__hnode *root, gt__hnode *n);

#endif
