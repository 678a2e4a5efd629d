/*
 * irt_systick.h - instructions counted with the Cortex-M SysTick timer under qemu -icount.
 *
 * qemu has no cycle model and its DWT cycle counter reads 0.  Under `-icount shift=0` one
 * guest instruction is 1 ns of virtual time and mps2-an500's SysTick (CLKSOURCE=1) counts at
 * 25 MHz, so one tick is 40 instructions; measured against a TCG plugin's exact count:
 * ticks x 40 = instructions within +-40 per reading (../shared/anchors/CORTEX_M7.md).
 * The 24-bit counter wraps every 671 M instructions; the SysTick interrupt counts the wraps.
 * Natively (make host) the functions return 0.
 */
#ifndef IRT_SYSTICK_H
#define IRT_SYSTICK_H

#include <stdint.h>

#define IRT_SYSTICK_INSTRUCTIONS_PER_TICK 40u

/* Instructions executed since the first call (0 on the first call). */
uint64_t irt_systick_instructions(void);

#endif /* IRT_SYSTICK_H */
