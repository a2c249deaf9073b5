/* Context switch for x86-64 System V.  Only what the ABI says a callee
 * must preserve is saved: rbx, rbp, r12-r15, the MXCSR control bits and
 * the x87 control word.  No signal mask, so no system call. */
    .text

/* void gt__ctx_swap_sp(void **save_sp, void *new_sp) */
    .globl gt__ctx_swap_sp
    .hidden gt__ctx_swap_sp
    .type gt__ctx_swap_sp, @function
gt__ctx_swap_sp:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size gt__ctx_swap_sp, .-gt__ctx_swap_sp

/* First code a new green thread runs: gt__ctx_make leaves the stack
 * 16-byte aligned here, so the call sees the alignment the ABI promises.
 * The undefined return address ends backtraces in debuggers. */
    .globl gt__ctx_start
    .hidden gt__ctx_start
    .type gt__ctx_start, @function
gt__ctx_start:
    .cfi_startproc
    .cfi_undefined rip
    xorl %ebp, %ebp
    call gt__thread_main
    ud2
    .cfi_endproc
    .size gt__ctx_start, .-gt__ctx_start

    .section .note.GNU-stack,"",@progbits
