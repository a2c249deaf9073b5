/* Saved execution contexts and the primitives that switch between them
 * (runtime/switch_x86_64.S, runtime/switch_ucontext.c).  Private to the
 * runtime: everything else parks and wakes through runtime/park.h. */
#ifndef GT_CTX_H
#define GT_CTX_H

#include "base.h"

#ifdef GT__UCONTEXT
#include <ucontext.h>
#endif

/* A saved execution context. */
typedef struct gt__ctx {
#ifdef GT__UCONTEXT
    ucontext_t uc;
#else
    void *sp; /* stack pointer with callee-saved registers pushed below */
#endif
#ifdef GT__TSAN
    void *tsan_fiber; /* ThreadSanitizer's state for this context */
#endif
} gt__ctx;

/* gt__ctx_swap saves `from` and resumes `to`; gt__ctx_enter saves `from`
 * and starts a context `to` that has never run, on the stack lo..hi, in
 * gt__ctx_start (see switch_x86_64.S for why the two differ).  A new
 * thread needs no gt__ctx_make before gt__ctx_enter; gt__ctx_make lays
 * out a context that gt__ctx_swap, or the end of a thread, can resume.
 * ThreadSanitizer hears of each switch at the last moment, inside the function
 * that makes it, so that its record of entered and left functions stays right
 * for both contexts. */
#ifdef GT__TSAN
#include <sanitizer/tsan_interface.h>
/* Flags 0: the switch orders what came before it before what comes
 * after, as it does on one OS thread. */
#define GT__TSAN_SWITCH(to) __tsan_switch_to_fiber((to)->tsan_fiber, 0)
#else
#define GT__TSAN_SWITCH(to) ((void)0)
#endif
#ifdef GT__UCONTEXT
void gt__ctx_make(gt__ctx *c, char *lo, const char *hi);
void gt__ctx_swap(gt__ctx *from, gt__ctx *to);
static inline void gt__ctx_enter(gt__ctx *from, gt__ctx *to, char *lo, char *hi)
{
    gt__ctx_make(to, lo, hi);
    gt__ctx_swap(from, to);
}
#else
/* The switch proper is a call from inline assembly into
 * runtime/switch_x86_64.S that saves only rbp, the MXCSR and the x87
 * control word.  Every other register is declared clobbered, so the
 * compiler keeps nothing live in them across the switch and saves the
 * callee-saved ones in the prologue of the function the switch is
 * inlined into, where most of them are pushed anyway: each switch saves
 * the six callee-saved registers once, not once in C and again in the
 * assembly.  rbp stays with the assembly because frame-pointer builds
 * may not declare it clobbered.  The call first steps over the red zone,
 * the 128 bytes below the stack pointer that the compiler may be using.
 * No x87 value is live across a switch (the runtime uses no long double),
 * but the x87 stack is listed too, as for any call. */
#ifdef __AVX512F__
#define GT__SWITCH_AVX512 /* registers only AVX-512 code may hold values in */ \
    "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",    \
        "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30",         \
        "xmm31", "k1", "k2", "k3", "k4", "k5", "k6", "k7",
#else
#define GT__SWITCH_AVX512
#endif
#define GT__SWITCH_CLOBBERS                                                    \
    GT__SWITCH_AVX512 "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11",    \
        "r12", "r13", "r14", "r15", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",    \
        "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",     \
        "xmm13", "xmm14", "xmm15", "st", "st(1)", "st(2)", "st(3)", "st(4)",   \
        "st(5)", "st(6)", "st(7)", "memory", "cc"
#define GT__SWITCH_CALL(fn, save, sp)                                          \
    __asm__ volatile("leaq -128(%%rsp), %%rsp\n\t"                             \
                     "call " fn "\n\t"                                         \
                     "leaq 128(%%rsp), %%rsp"                                  \
                     : "+D"(save), "+S"(sp)                                    \
                     :                                                         \
                     : GT__SWITCH_CLOBBERS)

void gt__ctx_start(void);

static inline void gt__ctx_swap(gt__ctx *from, gt__ctx *to)
{
    void **save = &from->sp, *sp = to->sp;
    GT__TSAN_SWITCH(to);
    GT__SWITCH_CALL("gt__ctx_swap_sp", save, sp);
}

/* gt__ctx_enter_sp starts gt__ctx_start with the stack pointer at the
 * 16-byte aligned top of the stack, and with the default MXCSR and x87
 * control word. */
static inline void gt__ctx_enter(gt__ctx *from, gt__ctx *to, char *lo, char *hi)
{
    (void)lo;
    (void)to; /* only ThreadSanitizer hears of it */
    void **save = &from->sp, *sp = hi - ((uintptr_t)hi & 15);
    GT__TSAN_SWITCH(to);
    GT__SWITCH_CALL("gt__ctx_enter_sp", save, sp);
}

/* Lays out the frame gt__ctx_swap_sp pops: the default MXCSR and x87
 * control word, an rbp whose value does not matter (gt__ctx_start clears
 * it), and gt__ctx_start as the return address, placed so that the stack
 * is 16-byte aligned after the return, as gt__ctx_start needs. */
static inline void gt__ctx_make(gt__ctx *c, char *lo, const char *hi)
{
    (void)lo;
    char *aligned = (char *)hi - ((uintptr_t)hi & 15);
    uint64_t *sp = (uint64_t *)(void *)(aligned - 40);
    sp[0] = 0x1F80 | ((uint64_t)0x037F << 32);
    sp[2] = (uint64_t)(uintptr_t)gt__ctx_start;
    c->sp = sp;
}
#endif

/* Runs the current thread's body; returns the context to resume after it
 * (the switch code jumps there; runtime/thread.c). */
gt__ctx *gt__thread_main(void);

#endif
