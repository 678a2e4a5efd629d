/*
 * irt_lora.h - task adapters (LoRA deltas) chosen at run time.
 *
 * `irtool compile --lora NAME=FILE` (repeatable) stores the low-rank matrices of every
 * adapter beside the base weights; each adapted linear is followed by one irt_lora_f32 call,
 * which adds the delta of the selected adapter: y += B_s (A_s x) (the scale alpha/r folded
 * into B).  Adapters are numbered in the order of the --lora options; the program starts
 * with the one chosen at compile time (--adapter, default the first) and may switch between
 * generated tokens.
 */
#ifndef IRT_LORA_H
#define IRT_LORA_H

/* Choose adapter i (0-based, in --lora order) for the following calls; -1 runs the base
 * model alone.  Returns 0, or -1 (and keeps the current choice) when i is out of range for
 * the adapters this program was compiled with (an out-of-range i is checked per call). */
int irt_select_adapter(int i);

/* The adapter the next call uses: the last irt_select_adapter, else `compiled`. */
int irt_selected_adapter(int compiled);

/* Whether a task adapter (not the base model alone) is selected, `compiled` the default of
 * a program with `adapters` of them: the condition of a streamed adapter's transfers and
 * kernels, which the base model alone skips. */
int irt_adapter_on(int compiled, int adapters);

/* out[t] = y[t] + b[s] @ (a[s] @ x[t]) with s the selected adapter (out = y for -1).
 * x [T][K], y and out [T][N] (out may be y), a [adapters][R][K], b [adapters][N][R],
 * rank [T][R] receives a[s] @ x[t] (the rank-sized scratch of the memory plan). */
void irt_lora_f32(const float *x, const float *y, const float *a, const float *b, float *out,
                  float *rank, int T, int K, int N, int R, int adapters, int selected);

/* The slab of a stack of `adapters` matrices the selected adapter uses (0 for the base model
 * alone, whose transfers irt_adapter_on skips): the DMA source of a streamed adapter matrix. */
int irt_lora_slab(int compiled, int adapters);

/* out[t] = y[t] + b @ rank[t] for the selected adapter (out = y for -1): rank [T][R] is
 * a_s @ x[t], b [N][R] the selected adapter's up matrix (rows of it, in a window), y and out
 * [T][N] (out may be y). */
void irt_lora_up_f32(const float *rank, const float *y, const float *b, float *out, int T,
                     int N, int R, int selected);

#endif /* IRT_LORA_H */
