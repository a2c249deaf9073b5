/* Context switch for x86-64 System V.  The callers (runtime/ctx.h) call
 * in from inline assembly that declares every other register clobbered,
 * so only rbp, the MXCSR control bits and the x87 control word are saved
 * here: the compiler has saved the other callee-saved registers it must
 * keep.  No signal mask, so no system call.
 *
 * A saved context is a stack pointer; below it, from low to high: MXCSR
 * and the x87 control word (8 bytes), rbp, and the address to resume at.
 * The caller's stack pointer is 128 bytes above the slot after that (the
 * red zone it stepped over).
 *
 * The CPU predicts each `ret` from a small stack of the return addresses
 * of recent calls.  Two green threads that park at the same call site
 * (a yield or channel ping-pong) resume at the address that stack
 * predicts, so the switch returns with `ret`.  A new thread is entered by
 * a jump instead (gt__ctx_enter_sp), which leaves its starter's return
 * address on top of that stack: when the thread ends without having
 * parked, the `ret` back to its starter (most often its joiner) is
 * predicted as well. */
#if defined(__SANITIZE_THREAD__)
#define GT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GT__TSAN 1
#endif
#endif

    .text

/* Pushes rbp and the control words and stores the stack pointer at
 * (%rdi): the saved context. */
    .macro save_context
    pushq %rbp
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    .endm

/* gt__ctx_swap_sp: saves the context at (%rdi), resumes the one at %rsi. */
    .globl gt__ctx_swap_sp
    .hidden gt__ctx_swap_sp
    .type gt__ctx_swap_sp, @function
gt__ctx_swap_sp:
    .cfi_startproc
    save_context
    movq %rsi, %rsp
restore:
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %rbp
    ret
    .cfi_endproc
    .size gt__ctx_swap_sp, .-gt__ctx_swap_sp

/* gt__ctx_enter_sp: saves like gt__ctx_swap_sp, then starts a new
 * context by a jump to gt__ctx_start, with %rsi (the 16-byte aligned top
 * of its stack) as the stack pointer and the control words every thread
 * starts with. */
    .globl gt__ctx_enter_sp
    .hidden gt__ctx_enter_sp
    .type gt__ctx_enter_sp, @function
gt__ctx_enter_sp:
    .cfi_startproc
    save_context
    ldmxcsr initial_csr(%rip)
    fldcw initial_csr+4(%rip)
    movq %rsi, %rsp
    jmp gt__ctx_start
    .cfi_endproc
    .size gt__ctx_enter_sp, .-gt__ctx_enter_sp

/* First code a new green thread runs, with the stack 16-byte aligned so
 * that the call sees the alignment the ABI promises.  gt__thread_main
 * returns the context to resume once the thread has ended; nothing of
 * the ended thread is saved.  The undefined return address ends
 * backtraces in debuggers. */
    .globl gt__ctx_start
    .hidden gt__ctx_start
    .type gt__ctx_start, @function
gt__ctx_start:
    .cfi_startproc
    .cfi_undefined rip
    xorl %ebp, %ebp
    call gt__thread_main
#ifdef GT__TSAN
    /* ThreadSanitizer: announce the switch to the context's state (the
     * field after sp), keeping rax and the call's 16-byte alignment. */
    pushq %rax
    subq $8, %rsp
    movq 8(%rax), %rdi
    xorl %esi, %esi
    call __tsan_switch_to_fiber@PLT
    addq $8, %rsp
    popq %rax
#endif
    movq (%rax), %rsp
    jmp restore
    .cfi_endproc
    .size gt__ctx_start, .-gt__ctx_start

/* The MXCSR and x87 control word of a new thread: the defaults the ABI
 * specifies (all exceptions masked, round to nearest, double-extended
 * precision); gt__ctx_make writes the same. */
    .section .rodata
    .balign 8
initial_csr:
    .long 0x1F80
    .short 0x037F

    .section .note.GNU-stack,"",@progbits
