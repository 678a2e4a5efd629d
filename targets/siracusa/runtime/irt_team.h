/*
 * irt_team.h - fork/join over the cores of the cluster (siracusa).
 *
 * irt_team_run(job, arg, cores) runs job(core, n, arg) on cores 0..n-1 (n = min(cores,
 * IRT_CORES)) and returns when all have finished: hart 0 is core 0; it writes the job, wakes
 * harts 1..n-1 with a software interrupt (CLINT msip), runs its own share and sleeps in wfi
 * until the last core to arrive at the barrier wakes it.  Idle cores sleep in wfi (under qemu
 * -icount a spinning hart would burn its whole time slice).  Built natively (make host) the
 * team is simulated: the cores' shares run one after another on the one host thread, which
 * checks the work split without the cluster.
 *
 * irt_phase_begin/irt_phase_end, irt_step_begin/irt_step_end, irt_prefill_begin/_end (a
 * batched prefill call) and irt_device_begin/_end
 * (a device model's own instructions, npu.h) are empty, never inlined
 * functions the TCG plugin (irt_hartcount_plugin.c) watches: the per-core instruction counts
 * of each parallel phase and of each decode step come from qemu, not from the program.
 */
#ifndef IRT_TEAM_H
#define IRT_TEAM_H

#ifndef IRT_CORES
#define IRT_CORES 8
#endif
#define IRT_MAX_CORES 8

typedef void (*irt_job_t)(int core, int cores, void *arg);

void irt_team_run(irt_job_t job, void *arg, int cores);
int irt_team_cores(int wanted);

/* Rows [*lo, *hi) of `rows` for `core` of `cores`: equal shares in multiples of `quantum`. */
void irt_team_share(int rows, int quantum, int core, int cores, int *lo, int *hi);

void irt_phase_begin(void);
void irt_phase_end(void);
void irt_step_begin(void);
void irt_step_end(void);
/* Around each batched prefill call (counted apart from the decode steps). */
void irt_prefill_begin(void);
void irt_prefill_end(void);
/* Work of a device model (the NPU's C model) run on hart 0: not cluster time. */
void irt_device_begin(void);
void irt_device_end(void);

#endif
