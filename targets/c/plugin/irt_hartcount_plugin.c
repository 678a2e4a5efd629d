/*
 * irt_hartcount_plugin.c - a qemu TCG plugin: exact instruction counts per hart, per decode
 * step, per batched prefill call and per parallel phase, for any guest architecture
 * (siracusa on qemu-system-riscv32 -M virt -smp N; cortex-m7-256k on qemu-system-arm
 * -M mps2-an500, one hart).
 *
 * Under -icount, minstret is one counter shared by all harts (../shared/anchors/CLUSTER_RV32.md),
 * so per-core counts come from here: every translated block adds its instruction count to its
 * hart.  The program marks boundaries by calling empty functions (irt_team.h) whose addresses
 * the Makefile passes as arguments (step_begin=0x..., step_end, prefill_begin, prefill_end
 * (a batched prefill call, counted apart from the decode steps), phase_begin, phase_end,
 * device_begin, device_end: hart 0 running a device model, left out of the cluster's time).  A
 * parallel phase's time is its slowest hart's instructions between phase_begin and phase_end
 * (fork and barrier code included); a step's modelled time is hart 0's instructions outside the
 * phases plus the sum of the phases' slowest harts.  Output (with -d plugin, on stderr):
 *   hartcount: hart H total N steps M          (steps: decode steps and prefill calls)
 *   hartcount: hart H prefill P                (with batched prefill calls: their share)
 *   hartcount: steps S phases P serial X parallel-slowest Y parallel-sum Z device D per-step W
 *   hartcount: prefill-calls C phases ... per-call W (the same for the batched prefill calls)
 *
 * Debian's qemu ships no qemu-plugin.h: the few API (version 1) declarations are below.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define MAX_HARTS 64
enum { STEP_BEGIN, STEP_END, PREFILL_BEGIN, PREFILL_END, PHASE_BEGIN, PHASE_END, DEVICE_BEGIN,
       DEVICE_END, MARKS };
static const char *mark_names[MARKS] = {"step_begin", "step_end", "prefill_begin",
                                        "prefill_end", "phase_begin", "phase_end",
                                        "device_begin", "device_end"};
static uint64_t mark_addr[MARKS];

/* the counts of one kind of call: decode steps (0) or batched prefill calls (1) */
typedef struct {
    uint64_t steps, phases, hart0_in_phases, slowest_sum, parallel_sum, device_sum;
    uint64_t hart0_in_steps;
} acc_t;
static acc_t acc[2];
static uint64_t total[MAX_HARTS], in_steps[MAX_HARTS], in_prefill[MAX_HARTS];
static uint64_t step_start[MAX_HARTS], phase_start[MAX_HARTS];
static uint64_t device_start; /* hart 0 running a device model (not cluster time) */
static int in_step, kind, per_step;
static uint64_t prompt_steps; /* prompt=N: the first N steps are the prompt's */
#define MAX_STEPS 65536
static uint64_t step_instructions[MAX_STEPS]; /* all harts, per decode step (per_step=1) */
static unsigned harts_seen;

static void count(unsigned int vcpu, void *n)
{
    if (vcpu < MAX_HARTS) {
        total[vcpu] += (uint64_t)(uintptr_t)n;
        if (vcpu + 1 > harts_seen)
            harts_seen = vcpu + 1;
    }
}

static void mark(unsigned int vcpu, void *what)
{
    (void)vcpu;
    acc_t *a = &acc[kind];
    switch ((int)(uintptr_t)what) {
    case STEP_BEGIN:
    case PREFILL_BEGIN:
        memcpy(step_start, total, sizeof total);
        in_step = 1;
        kind = (int)(uintptr_t)what == PREFILL_BEGIN;
        break;
    case STEP_END:
    case PREFILL_END: {
        if (!in_step)
            break;
        uint64_t all = 0;
        for (unsigned h = 0; h < MAX_HARTS; h++) {
            in_steps[h] += total[h] - step_start[h];
            if (kind)
                in_prefill[h] += total[h] - step_start[h];
            all += total[h] - step_start[h];
        }
        if (!kind && a->steps < MAX_STEPS)
            step_instructions[a->steps] = all;
        a->hart0_in_steps += total[0] - step_start[0];
        a->steps++;
        in_step = 0;
        break;
    }
    case PHASE_BEGIN:
        memcpy(phase_start, total, sizeof total);
        break;
    case PHASE_END: {
        if (!in_step)
            break;
        uint64_t slowest = 0;
        for (unsigned h = 0; h < MAX_HARTS; h++) {
            uint64_t d = total[h] - phase_start[h];
            a->parallel_sum += d;
            if (d > slowest)
                slowest = d;
        }
        a->hart0_in_phases += total[0] - phase_start[0];
        a->slowest_sum += slowest;
        a->phases++;
        break;
    }
    case DEVICE_BEGIN:
        device_start = total[0];
        break;
    case DEVICE_END:
        if (in_step)
            a->device_sum += total[0] - device_start;
        break;
    }
}

static void translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    uint64_t pc = qemu_plugin_tb_vaddr(tb);
    for (int m = 0; m < MARKS; m++)
        if (mark_addr[m] && pc == (mark_addr[m] & ~(uint64_t)1))
            qemu_plugin_register_vcpu_tb_exec_cb(tb, mark, QEMU_PLUGIN_CB_NO_REGS,
                                                 (void *)(uintptr_t)m);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, count, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)qemu_plugin_tb_n_insns(tb));
}

static void report(qemu_plugin_id_t id, void *p)
{
    (void)id;
    (void)p;
    char line[256];
    const uint64_t steps = acc[0].steps;
    for (uint64_t k = 0; per_step && k < steps && k < MAX_STEPS; k++) {
        snprintf(line, sizeof line, "hartcount: step %" PRIu64 " instructions %" PRIu64 "\n",
                 k, step_instructions[k]);
        qemu_plugin_outs(line);
    }
    if (prompt_steps) {
        uint64_t sums[2] = {0, 0}, counts[2] = {0, 0};
        for (uint64_t k = 0; k < steps && k < MAX_STEPS; k++) {
            sums[k >= prompt_steps] += step_instructions[k];
            counts[k >= prompt_steps]++;
        }
        snprintf(line, sizeof line, "hartcount: exact instructions per prompt step %" PRIu64
                 " per generated step %" PRIu64 "\n", counts[0] ? sums[0] / counts[0] : 0,
                 counts[1] ? sums[1] / counts[1] : 0);
        qemu_plugin_outs(line);
    }
    for (unsigned h = 0; h < harts_seen; h++) {
        snprintf(line, sizeof line, "hartcount: hart %u total %" PRIu64 " steps %" PRIu64 "\n",
                 h, total[h], in_steps[h]);
        qemu_plugin_outs(line);
        if (acc[1].steps) {
            snprintf(line, sizeof line, "hartcount: hart %u prefill %" PRIu64 "\n", h,
                     in_prefill[h]);
            qemu_plugin_outs(line);
        }
    }
    for (int k = 0; k < 2; k++) {
        const acc_t *a = &acc[k];
        uint64_t serial = a->hart0_in_steps - a->hart0_in_phases - a->device_sum;
        if (k == 1 && !a->steps)
            break; /* no batched prefill */
        snprintf(line, sizeof line,
                 "hartcount: %s %" PRIu64 " phases %" PRIu64 " serial %" PRIu64
                 " parallel-slowest %" PRIu64 " parallel-sum %" PRIu64 " device %" PRIu64
                 " per-%s %" PRIu64 "\n",
                 k ? "prefill-calls" : "steps", a->steps, a->phases, serial, a->slowest_sum,
                 a->parallel_sum, a->device_sum, k ? "call" : "step",
                 a->steps ? (serial + a->slowest_sum) / a->steps : 0);
        qemu_plugin_outs(line);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "per_step=1"))
            per_step = 1;
        if (!strncmp(argv[i], "prompt=", 7))
            prompt_steps = strtoull(argv[i] + 7, NULL, 10);
        for (int m = 0; m < MARKS; m++) {
            size_t n = strlen(mark_names[m]);
            if (!strncmp(argv[i], mark_names[m], n) && argv[i][n] == '=')
                mark_addr[m] = strtoull(argv[i] + n + 1, NULL, 16);
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, translate);
    qemu_plugin_register_atexit_cb(id, report, NULL);
    return 0;
}
