// 2D convolution of a W x H image with a 7 x 7 filter, cache-blocked, timed inside (milliseconds).
#include <time.h>
#define PRAGMA(x) _Pragma(#x)
#define UNROLL_BY(n) PRAGMA(GCC unroll n)
#define W 768
#define H 512
#define F 7

float convolution(float *out, const float *in, const float *filter) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int by = 0; by < H; by += TILE_Y) {
        for (int bx = 0; bx < W; bx += TILE_X) {
            for (int y = by; y < by + TILE_Y; y += ROWS) {
#if FILTER_OUTER
                float acc[ROWS][TILE_X];
                for (int r = 0; r < ROWS; r++)
                    for (int x = 0; x < TILE_X; x++) acc[r][x] = 0.0f;
                for (int fy = 0; fy < F; fy++)
                    UNROLL_BY(UNROLL_F)
                    for (int fx = 0; fx < F; fx++) {
                        float w = filter[fy * F + fx];
                        for (int r = 0; r < ROWS; r++)
                            for (int x = 0; x < TILE_X; x++) acc[r][x] += w * in[(y + r + fy) * (W + F - 1) + bx + x + fx];
                    }
                for (int r = 0; r < ROWS; r++)
                    for (int x = 0; x < TILE_X; x++) out[(y + r) * W + bx + x] = acc[r][x];
#else
                for (int x = bx; x < bx + TILE_X; x++) {
                    float acc[ROWS] = {0.0f};
                    for (int fy = 0; fy < F; fy++)
                        UNROLL_BY(UNROLL_F)
                        for (int fx = 0; fx < F; fx++)
                            for (int r = 0; r < ROWS; r++) acc[r] += filter[fy * F + fx] * in[(y + r + fy) * (W + F - 1) + x + fx];
                    for (int r = 0; r < ROWS; r++) out[(y + r) * W + x] = acc[r];
                }
#endif
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0.tv_sec) * 1e3f + (t1.tv_nsec - t0.tv_nsec) * 1e-6f;
}
