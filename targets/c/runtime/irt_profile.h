/*
 * irt_profile.h - per-kernel instruction counts of a generated program (a bench tool).
 *
 * Built with -DIRT_PROFILE, every call of a runtime kernel from generated code (model.c,
 * main.c: whatever includes irt_kernels.h / irt_quant.h, but not the runtime's own sources)
 * is wrapped by a macro that reads the retired-instruction counter before and after it and
 * adds the difference to that kernel's total.  At exit the totals are printed, one line per
 * kernel:  "irt-profile NAME CALLS INSTRUCTIONS".  Why counters in the program: Debian's
 * qemu ships no TCG plugins, and minstret is exact under -icount shift=0.  A target without
 * minstret names its counter with -DIRT_PROFILE_COUNTER=FUNCTION (cortex-m7-256k: SysTick,
 * 40 instructions a tick); a build with no counter (make host) prints one line saying so.
 *
 * The window of one call also holds the argument set-up and the call itself (a few
 * instructions); the cost of an empty window is measured once and subtracted.
 * Without IRT_PROFILE this header defines nothing.
 */
#ifndef IRT_PROFILE_H
#define IRT_PROFILE_H

#if defined(IRT_PROFILE)

#include <stdint.h>

/* Reads the counter; the caller passes it to irt_profile_leave. */
uint64_t irt_profile_enter(void);
/* Adds the instructions since `start` (less the empty window) to kernel `name`. */
void irt_profile_leave(const char *name, uint64_t start);

#define IRT_PROFILE_CALL(name, call)                                                    \
    do {                                                                                \
        const uint64_t irt_profile_start_ = irt_profile_enter();                        \
        call;                                                                           \
        irt_profile_leave(name, irt_profile_start_);                                    \
    } while (0)

#endif /* IRT_PROFILE */

#endif /* IRT_PROFILE_H */
