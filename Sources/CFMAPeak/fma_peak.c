// A register-only FMA loop per instruction set, chosen at run time: Swift cannot emit AVX-512 or FMA
// code for a baseline x86-64 target, so the peak that bench compares the CNN against is measured here.
#include "fma_peak.h"

#include <immintrin.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// 12 independent accumulators cover an FMA latency of 4-6 cycles on two ports.
#define PEAK_LOOP(VEC, SET1, FMA, ADD, STORE, LANES)                                         \
    VEC a = SET1(0.999999f), b = SET1(1e-7f);                                                \
    VEC x0 = SET1(0), x1 = SET1(1), x2 = SET1(2), x3 = SET1(3), x4 = SET1(4), x5 = SET1(5);  \
    VEC x6 = SET1(6), x7 = SET1(7), x8 = SET1(8), x9 = SET1(9), x10 = SET1(10), x11 = SET1(11); \
    for (long i = 0; i < iterations; i++) {                                                  \
        x0 = FMA(x0, a, b); x1 = FMA(x1, a, b); x2 = FMA(x2, a, b); x3 = FMA(x3, a, b);      \
        x4 = FMA(x4, a, b); x5 = FMA(x5, a, b); x6 = FMA(x6, a, b); x7 = FMA(x7, a, b);      \
        x8 = FMA(x8, a, b); x9 = FMA(x9, a, b); x10 = FMA(x10, a, b); x11 = FMA(x11, a, b);  \
    }                                                                                        \
    VEC s = ADD(ADD(ADD(x0, x1), ADD(x2, x3)), ADD(ADD(x4, x5), ADD(x6, x7)));               \
    s = ADD(s, ADD(ADD(x8, x9), ADD(x10, x11)));                                             \
    float out[LANES];                                                                        \
    STORE(out, s);                                                                           \
    return out[0];

__attribute__((target("avx512f"))) static float loop_avx512(long iterations) {
    PEAK_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps, 16)
}

__attribute__((target("avx2,fma"))) static float loop_avx2(long iterations) {
    PEAK_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, 8)
}

// Without FMA: a multiply and an add per lane, counted as one FMA's two flops.
#define SSE_MULADD(x, a, b) _mm_add_ps(_mm_mul_ps(x, a), b)
static float loop_sse(long iterations) {
    PEAK_LOOP(__m128, _mm_set1_ps, SSE_MULADD, _mm_add_ps, _mm_storeu_ps, 4)
}

volatile float fma_peak_sink;

double fma_peak_gflops(double seconds, const char **isa) {
    float (*loop)(long) = loop_sse;
    int lanes = 4;
    *isa = "sse";
    if (__builtin_cpu_supports("avx512f")) { loop = loop_avx512; lanes = 16; *isa = "avx512"; }
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { loop = loop_avx2; lanes = 8; *isa = "avx2"; }
    long iterations = 1 << 20;
    double best = 0;
    for (double start = now(); now() - start < seconds;) {
        double t0 = now();
        fma_peak_sink = loop(iterations);
        double rate = 12.0 * lanes * 2 * iterations / (now() - t0) / 1e9;
        if (rate > best) best = rate;
    }
    return best;
}
