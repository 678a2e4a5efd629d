/* irt_systick.c - see irt_systick.h. */
#include "irt_systick.h"

#if defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_8M_MAIN__)

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u) /* control and status */
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u) /* reload value */
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u) /* current value (counts down) */
#define SYST_MAX 0xFFFFFFu

static volatile uint32_t wraps;
static int started;

/* picolibc's vector table names this handler weakly: ours counts the 24-bit wraps. */
void arm_systick_isr(void)
{
    wraps++;
}

uint64_t irt_systick_instructions(void)
{
    if (!started) {
        SYST_RVR = SYST_MAX;
        SYST_CVR = 0;
        SYST_CSR = 7; /* enable | interrupt on wrap | processor clock */
        while (SYST_CVR == 0) {
        } /* reads 0 until the first reload */
        started = 1;
    }
    uint32_t w, v;
    do {
        w = wraps;
        v = SYST_CVR;
    } while (w != wraps);
    uint64_t ticks = (uint64_t)w * (SYST_MAX + 1u) + (SYST_MAX - v);
    return ticks * IRT_SYSTICK_INSTRUCTIONS_PER_TICK;
}

#else

uint64_t irt_systick_instructions(void)
{
    return 0;
}

#endif
