/*
 * irt_team.c - the fork/join runtime of the siracusa cluster (see irt_team.h).
 */
#include "irt_team.h"

#include <stdint.h>

#define IRT_HART_STACK_WORDS (IRT_HART_STACK_BYTES / 4)

int irt_team_cores(int wanted)
{
    int n = wanted < IRT_CORES ? wanted : IRT_CORES;
    return n < 1 ? 1 : n;
}

void irt_team_share(int rows, int quantum, int core, int cores, int *lo, int *hi)
{
    int blocks = (rows + quantum - 1) / quantum;
    int per = blocks / cores, extra = blocks % cores;
    int b0 = core * per + (core < extra ? core : extra);
    int b1 = b0 + per + (core < extra ? 1 : 0);
    *lo = b0 * quantum < rows ? b0 * quantum : rows;
    *hi = b1 * quantum < rows ? b1 * quantum : rows;
}

/* Markers for the plugin: empty bodies that must stay calls at their own addresses (the
 * asm texts differ so that identical-code folding cannot merge them). */
__attribute__((noinline)) void irt_phase_begin(void) { __asm__ __volatile__(" # phase_begin" ::: "memory"); }
__attribute__((noinline)) void irt_phase_end(void) { __asm__ __volatile__(" # phase_end" ::: "memory"); }
__attribute__((noinline)) void irt_step_begin(void) { __asm__ __volatile__(" # step_begin" ::: "memory"); }
__attribute__((noinline)) void irt_step_end(void) { __asm__ __volatile__(" # step_end" ::: "memory"); }
__attribute__((noinline)) void irt_prefill_begin(void) { __asm__ __volatile__(" # prefill_begin" ::: "memory"); }
__attribute__((noinline)) void irt_prefill_end(void) { __asm__ __volatile__(" # prefill_end" ::: "memory"); }
__attribute__((noinline)) void irt_device_begin(void) { __asm__ __volatile__(" # device_begin" ::: "memory"); }
__attribute__((noinline)) void irt_device_end(void) { __asm__ __volatile__(" # device_end" ::: "memory"); }

#if defined(__riscv)

/* one stack per hart; hart 0 uses picolibc's (irt_cluster_entry.S sets the others) */
uint32_t irt_hart_stacks[IRT_MAX_CORES][IRT_HART_STACK_WORDS] __attribute__((aligned(16)));

#define IRT_CLINT_MSIP ((volatile uint32_t *)0x02000000u) /* qemu virt's CLINT */

static irt_job_t volatile team_job;
static void *volatile team_arg;
static volatile int team_size;
static int team_arrived;
static int team_started;

static inline void irt__wfi(void) { __asm__ __volatile__("wfi" ::: "memory"); }

static inline int irt__msip_pending(void)
{
    uint32_t mip;
    __asm__ __volatile__("csrr %0, mip" : "=r"(mip));
    return (mip & 8u) != 0;
}

void irt_worker_main(int hart) __attribute__((noreturn));
void irt_worker_main(int hart)
{
    for (;;) {
        IRT_CLINT_MSIP[hart] = 0;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        int n = team_size;
        if (hart < n)
            team_job(hart, n, team_arg);
        if (__atomic_add_fetch(&team_arrived, 1, __ATOMIC_SEQ_CST) == IRT_CORES - 1)
            IRT_CLINT_MSIP[0] = 1; /* the last to arrive wakes hart 0 */
        while (!irt__msip_pending())
            irt__wfi();
    }
}

void irt_team_run(irt_job_t job, void *arg, int cores)
{
    int n = irt_team_cores(cores);
    if (n == 1) {
        job(0, 1, arg);
        return;
    }
    if (!team_started) { /* hart 0 too sleeps in wfi: its software interrupt wakes it */
        __asm__ __volatile__("csrs mie, %0" ::"r"(8u));
        team_started = 1;
    }
    irt_phase_begin();
    team_job = job;
    team_arg = arg;
    team_size = n;
    __atomic_store_n(&team_arrived, 0, __ATOMIC_SEQ_CST);
    for (int h = 1; h < IRT_CORES; h++) /* every parked core joins the barrier */
        IRT_CLINT_MSIP[h] = 1;
    job(0, n, arg);
    while (__atomic_load_n(&team_arrived, __ATOMIC_SEQ_CST) < IRT_CORES - 1) {
        irt__wfi();
        IRT_CLINT_MSIP[0] = 0;
    }
    irt_phase_end();
}

#else /* native build: the cores' shares one after another */

void irt_team_run(irt_job_t job, void *arg, int cores)
{
    int n = irt_team_cores(cores);
    irt_phase_begin();
    for (int c = 0; c < n; c++)
        job(c, n, arg);
    irt_phase_end();
}

#endif
