/*
 * irt_cluster_entry.S - the first code of the program on every hart (siracusa on qemu virt).
 *
 * qemu-system-riscv32 -M virt -smp N starts every hart at 0x80000000 with a0 = hart id
 * (../shared/anchors/CLUSTER_RV32.md).  picolibc's linker script places .text.init.enter
 * first, so this runs on all harts: hart 0 goes to picolibc's crt0 (_start: .bss, C library,
 * main); the others must not run crt0.  A cluster core gets its own stack and the global
 * pointer, turns the FPU on, enables its software interrupt in mie (wfi wakes on a pending
 * enabled interrupt even with mstatus.MIE clear, so no trap handler is needed) and sleeps
 * in wfi until hart 0's first fork sends it an IPI (CLINT msip).  Only then does it enter C:
 * hart 0 has zeroed .bss (the stacks included) by then.
 */
    .section .text.init.enter, "ax"
    .globl _irt_enter
_irt_enter:
    csrr    t0, mhartid
    bnez    t0, 1f
    j       _start
1:
    .option push
    .option norelax
    la      gp, __global_pointer$
    .option pop
    la      sp, irt_hart_stacks
    li      t1, IRT_HART_STACK_BYTES
    addi    t2, t0, 1
    mul     t1, t1, t2
    add     sp, sp, t1
    li      t1, 0x2000
    csrs    mstatus, t1
    li      t1, 8
    csrs    mie, t1
2:
    wfi
    csrr    t1, mip
    andi    t1, t1, 8
    beqz    t1, 2b
    mv      a0, t0
    j       irt_worker_main
