/*
 * irt_profile.c - the totals behind irt_profile.h (compiled to nothing without IRT_PROFILE).
 */
#if defined(IRT_PROFILE)

#include "irt_profile.h"

#include "irt_counters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IRT_PROFILE_SLOTS 48

#if defined(IRT_PROFILE_COUNTER)
/* A target's own counter of instructions, named by its Makefile (cortex-m7-256k: SysTick,
 * which it has instead of minstret; with minstret alone every window read 0 there). */
uint64_t IRT_PROFILE_COUNTER(void);
#define irt__profile_counter() IRT_PROFILE_COUNTER()
#else
#define irt__profile_counter() irt_read_minstret()
#endif

static struct {
    const char *name;
    uint32_t calls;
    uint64_t instructions;
} irt_profile_slots[IRT_PROFILE_SLOTS];
static int irt_profile_used;
static uint64_t irt_profile_empty = UINT64_MAX; /* the cost of an empty window */
static uint64_t irt_profile_first;              /* the counter at the first window */

uint64_t irt_profile_enter(void)
{
    return irt__profile_counter();
}

static void irt_profile_report(void)
{
    int i;
    if (irt__profile_counter() == irt_profile_first) { /* a build without a counter */
        printf("irt-profile: no instruction counter in this build (make run PROFILE=1 counts "
               "on the target)\n");
        return;
    }
    for (i = 0; i < irt_profile_used; ++i)
        printf("irt-profile %s %lu %llu\n", irt_profile_slots[i].name,
               (unsigned long)irt_profile_slots[i].calls,
               (unsigned long long)irt_profile_slots[i].instructions);
}

void irt_profile_leave(const char *name, uint64_t start)
{
    const uint64_t now = irt__profile_counter();
    uint64_t used = now - start;
    int i;
    if (irt_profile_empty == UINT64_MAX) {
        /* First use: measure an empty window the same way, and report at exit. */
        const uint64_t s = irt_profile_enter();
        irt_profile_first = start;
        irt_profile_empty = 0;
        irt_profile_leave("", s);
        irt_profile_empty = irt_profile_slots[0].instructions;
        memset(irt_profile_slots, 0, sizeof irt_profile_slots);
        irt_profile_used = 0;
        atexit(irt_profile_report);
    }
    used = used > irt_profile_empty ? used - irt_profile_empty : 0;
    for (i = 0; i < irt_profile_used; ++i)
        if (strcmp(irt_profile_slots[i].name, name) == 0)
            break;
    if (i == irt_profile_used) {
        if (i == IRT_PROFILE_SLOTS)
            return;
        irt_profile_slots[i].name = name;
        irt_profile_used++;
    }
    irt_profile_slots[i].calls++;
    irt_profile_slots[i].instructions += used;
}

#else
typedef int irt_profile_unused; /* ISO C wants at least one declaration per file */
#endif
