/* irt_step_marks.c - the decode-step markers of irt_step_marks.h: never inlined, never merged,
 * so each has an address of its own for the plugin. */
#include "irt_step_marks.h"

__attribute__((noinline)) void irt_step_begin(void)
{
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void irt_step_end(void)
{
    __asm__ volatile("nop" ::: "memory");
}
