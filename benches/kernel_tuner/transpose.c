// Out-of-place transpose of an N x N float matrix, tiled, timed inside (milliseconds).
#include <time.h>
#define PRAGMA(x) _Pragma(#x)
#define UNROLL_BY(n) PRAGMA(GCC unroll n)
#define N 1536

float transpose(float *out, const float *in) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int bi = 0; bi < N; bi += TILE_I) {
        for (int bj = 0; bj < N; bj += TILE_J) {
#if BUFFERED
            float buf[TILE_I][TILE_J];
            for (int i = 0; i < TILE_I; i++)
                UNROLL_BY(UNROLL)
                for (int j = 0; j < TILE_J; j++) buf[i][j] = in[(bi + i) * N + bj + j];
            for (int j = 0; j < TILE_J; j++)
                UNROLL_BY(UNROLL)
                for (int i = 0; i < TILE_I; i++) out[(bj + j) * N + bi + i] = buf[i][j];
#else
            for (int i = 0; i < TILE_I; i++)
                UNROLL_BY(UNROLL)
                for (int j = 0; j < TILE_J; j++) out[(bj + j) * N + bi + i] = in[(bi + i) * N + bj + j];
#endif
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0.tv_sec) * 1e3f + (t1.tv_nsec - t0.tv_nsec) * 1e-6f;
}
