// Tiled single-precision matrix multiply, C = A * B (N x N), timed inside: Kernel Tuner's C backend
// calls it and reads the returned milliseconds. Tuning parameters arrive as #defines.
#include <time.h>
#define PRAGMA(x) _Pragma(#x)
#define UNROLL_BY(n) PRAGMA(GCC unroll n)
#include <string.h>
#define N 192

// A tile's accumulator lives on the stack: tiles that do not fit are refused at compile time
// (Kernel Tuner skips a compile error with this message and records CompilationFailedConfig).
#if TILE_I * TILE_J > 8192
#error "local memory limit exceeded: the accumulator tile does not fit"
#endif

float matmul(float *C, const float *A, const float *B) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(C, 0, sizeof(float) * N * N);
    for (int ii = 0; ii < N; ii += TILE_I) {
        for (int jj = 0; jj < N; jj += TILE_J) {
            float acc[TILE_I][TILE_J];
            memset(acc, 0, sizeof(acc));
            for (int kk = 0; kk < N; kk += TILE_K) {
                for (int i = 0; i < TILE_I; i++) {
#if LOOP_ORDER == 0
                    for (int k = 0; k < TILE_K; k++) {
                        float a = A[(ii + i) * N + kk + k];
                        UNROLL_BY(UNROLL_J)
                        for (int j = 0; j < TILE_J; j++) acc[i][j] += a * B[(kk + k) * N + jj + j];
                    }
#else
                    UNROLL_BY(UNROLL_J)
                    for (int j = 0; j < TILE_J; j++) {
                        float s = 0.0f;
                        for (int k = 0; k < TILE_K; k++) s += A[(ii + i) * N + kk + k] * B[(kk + k) * N + jj + j];
                        acc[i][j] += s;
                    }
#endif
                }
            }
            for (int i = 0; i < TILE_I; i++)
                for (int j = 0; j < TILE_J; j++) C[(ii + i) * N + jj + j] = acc[i][j];
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0.tv_sec) * 1e3f + (t1.tv_nsec - t0.tv_nsec) * 1e-6f;
}
