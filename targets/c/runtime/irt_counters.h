/*
 * irt_counters.h - cycle and retired-instruction counters for measuring kernels.
 *
 * On RISC-V (machine mode, as on a bare-metal core) these read the mcycle (0xB00/0xB80)
 * and minstret (0xB02/0xB82) CSRs; on RV32 the 64-bit value is read high-low-high and
 * re-read if the high half changed in between (a carry out of the low half).  Counters
 * that the core does not implement read as 0 (or trap, if the core says so).  On every
 * other target both functions return 0.
 *
 *   uint64_t i0 = irt_read_minstret();
 *   irt_linear_f32(...);
 *   uint64_t retired = irt_read_minstret() - i0;
 */
#ifndef IRT_COUNTERS_H
#define IRT_COUNTERS_H

#include <stdint.h>

#if defined(__riscv)

#if __riscv_xlen == 32
#define IRT__READ_CSR64(lo_csr, hi_csr)                                                 \
    do {                                                                                \
        uint32_t hi_, lo_, hi2_;                                                        \
        do {                                                                            \
            __asm__ __volatile__("csrr %0, " #hi_csr : "=r"(hi_));                      \
            __asm__ __volatile__("csrr %0, " #lo_csr : "=r"(lo_));                      \
            __asm__ __volatile__("csrr %0, " #hi_csr : "=r"(hi2_));                     \
        } while (hi_ != hi2_);                                                          \
        return ((uint64_t)hi_ << 32) | lo_;                                             \
    } while (0)
#else
#define IRT__READ_CSR64(lo_csr, hi_csr)                                                 \
    do {                                                                                \
        uint64_t v_;                                                                    \
        __asm__ __volatile__("csrr %0, " #lo_csr : "=r"(v_));                           \
        return v_;                                                                      \
    } while (0)
#endif

/* Instructions retired (minstret). */
static inline uint64_t irt_read_minstret(void)
{
    IRT__READ_CSR64(0xB02, 0xB82);
}

/* Clock cycles (mcycle). */
static inline uint64_t irt_read_mcycle(void)
{
    IRT__READ_CSR64(0xB00, 0xB80);
}

#undef IRT__READ_CSR64

#else /* not RISC-V */

static inline uint64_t irt_read_minstret(void)
{
    return 0;
}

static inline uint64_t irt_read_mcycle(void)
{
    return 0;
}

#endif

#endif /* IRT_COUNTERS_H */
