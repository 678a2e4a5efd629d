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

static struct {
    const char *name;
    uint32_t calls;
    uint64_t instructions;
} irt_profile_slots[IRT_PROFILE_SLOTS];
static int irt_profile_used;
static uint64_t irt_profile_empty = UINT64_MAX; /* the cost of an empty window */

uint64_t irt_profile_enter(void)
{
    return irt_read_minstret();
}

static void irt_profile_report(void)
{
    int i;
    for (i = 0; i < irt_profile_used; ++i)
        printf("irt-profile %s %lu %llu\n", irt_profile_slots[i].name,
               (unsigned long)irt_profile_slots[i].calls,
               (unsigned long long)irt_profile_slots[i].instructions);
}

void irt_profile_leave(const char *name, uint64_t start)
{
    const uint64_t now = irt_read_minstret();
    uint64_t used = now - start;
    int i;
    if (irt_profile_empty == UINT64_MAX) {
        /* First use: measure an empty window the same way, and report at exit. */
        const uint64_t s = irt_profile_enter();
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
