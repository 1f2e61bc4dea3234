#ifndef FMA_PEAK_H
#define FMA_PEAK_H

/// One core's fp32 fused multiply-add peak, measured: GFLOP/s (2 per lane per FMA) of a register-only
/// loop on the widest FMA unit the CPU has, for about `seconds`. `isa` names it ("avx512", "avx2", "sse").
double fma_peak_gflops(double seconds, const char **isa);

#endif
