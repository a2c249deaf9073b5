/* Circular doubly linked lists with a sentinel head, linked through a
 * member of the listed struct. */
#ifndef GT_LIST_H
#define GT_LIST_H

#include <stddef.h>

/* The struct of type `type` whose member `field` p points at. */
#define GT__CONTAINER(p, type, field)                                          \
    ((type *)(void *)((char *)(p)-offsetof(type, field)))

/* A detached node points at itself, so removing it twice is harmless. */
typedef struct gt__list {
    struct gt__list *next, *prev;
} gt__list;

static inline void gt__list_init(gt__list *l)
{
    l->next = l->prev = l;
}
static inline int gt__list_empty(const gt__list *l)
{
    return l->next == l;
}
static inline void gt__list_push(gt__list *head, gt__list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
/* Moves every node of `from`, in order, to the end of `to`. */
static inline void gt__list_splice(gt__list *to, gt__list *from)
{
    if (gt__list_empty(from)) return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    gt__list_init(from);
}
static inline void gt__list_remove(gt__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}
/* gt__list_remove for a node that will be pushed again, or removed only
 * while linked: it is left pointing at its old neighbours. */
static inline void gt__list_unlink(gt__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
}

#endif
