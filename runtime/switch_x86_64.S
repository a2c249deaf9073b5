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
 * Loading the MXCSR and the x87 control word costs more than the rest of
 * a switch together (some 4 ns of a 15 ns switch on the machines we
 * measured), and green threads that change either are rare.  So a switch
 * loads each only when the context it resumes saved a value other than
 * the one in force: every context still runs with its own control words,
 * and most switches store them and compare, without a load.
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
 * (%rdi): the saved context.  Leaves the control words in force in %edx
 * (MXCSR) and %ecx (x87, zero-extended) for load_changed. */
    .macro save_context
    pushq %rbp
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movl (%rsp), %edx
    movzwl 4(%rsp), %ecx
    .endm

/* Puts in force the control words stored at (\base), MXCSR first and the
 * x87 control word 4 bytes above, each only if it differs from the one in
 * %edx or %ecx (see the top of this file). */
    .macro load_changed base
    cmpl (\base), %edx
    je 1f
    ldmxcsr (\base)
1:
    cmpw 4(\base), %cx
    je 2f
    fldcw 4(\base)
2:
    .endm

/* gt__ctx_swap_sp: saves the context at (%rdi), resumes the one at %rsi. */
    .globl gt__ctx_swap_sp
    .hidden gt__ctx_swap_sp
    .type gt__ctx_swap_sp, @function
gt__ctx_swap_sp:
    .cfi_startproc
    save_context
    movq %rsi, %rsp
/* Resumes the context whose stack pointer is in %rsp, with the control
 * words in force in %edx and %ecx. */
restore:
    load_changed %rsp
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
    leaq initial_csr(%rip), %rax
    load_changed %rax
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
    /* The ended thread's control words, read where its frame was (its
     * stack is no longer anyone's). */
    stmxcsr -8(%rsp)
    fnstcw -4(%rsp)
    movl -8(%rsp), %edx
    movzwl -4(%rsp), %ecx
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
