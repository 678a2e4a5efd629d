/*
 * irt_step_marks.h - empty functions main.c calls around every decode step.
 *
 * The TCG plugin targets/c/plugin/irt_hartcount_plugin.c (run by `make run`) watches their
 * addresses, which the Makefile reads from the ELF, and prints the exact instructions of every
 * step ("hartcount: step K instructions N"): SysTick under -icount is only +-40.
 */
#ifndef IRT_STEP_MARKS_H
#define IRT_STEP_MARKS_H

void irt_step_begin(void);
void irt_step_end(void);

#endif /* IRT_STEP_MARKS_H */
