/* matmul: blocked double-precision matrix multiply C = A * B (n x n, row-major).
 *
 * Usage: matmul [default|small|N]   (N = matrix order)
 * Prints "checksum <hex>" (FNV-1a over the bits of C, so any change in rounding is seen)
 * and "time <seconds>" (the multiply only). Inputs come from a fixed LCG: deterministic.
 *
 * Every C[i][j] accumulates its products in the same k order whatever the compiler vectorizes
 * (the inner loop runs over j), so results are bit-identical across -O levels; they change only
 * when floating-point semantics change (e.g. -ffast-math contracting a*b+c into an FMA).
 */
#define _POSIX_C_SOURCE 199309L
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { DEFAULT_N = 448, SMALL_N = 128, BLOCK = 64 };

static uint64_t lcg_state = 0x9E3779B97F4A7C15ULL;

static double lcg_unit(void) {
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) * 0x1.0p-53 - 0.5; /* in [-0.5, 0.5) */
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001B3ULL;
    }
    return h;
}

static long parse_size(int argc, char **argv, long dflt, long small) {
    if (argc < 2 || strcmp(argv[1], "default") == 0) return dflt;
    if (strcmp(argv[1], "small") == 0) return small;
    char *end = NULL;
    long n = strtol(argv[1], &end, 10);
    if (*end != '\0' || n < 1 || n > 100000) {
        fprintf(stderr, "usage: %s [default|small|N]\n", argv[0]);
        exit(2);
    }
    return n;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void multiply(long n, const double *restrict a, const double *restrict b, double *restrict c) {
    for (long ii = 0; ii < n; ii += BLOCK) {
        long imax = ii + BLOCK < n ? ii + BLOCK : n;
        for (long kk = 0; kk < n; kk += BLOCK) {
            long kmax = kk + BLOCK < n ? kk + BLOCK : n;
            for (long jj = 0; jj < n; jj += BLOCK) {
                long jmax = jj + BLOCK < n ? jj + BLOCK : n;
                for (long i = ii; i < imax; i++) {
                    for (long k = kk; k < kmax; k++) {
                        double aik = a[i * n + k];
                        for (long j = jj; j < jmax; j++) c[i * n + j] += aik * b[k * n + j];
                    }
                }
            }
        }
    }
}

int main(int argc, char **argv) {
    long n = parse_size(argc, argv, DEFAULT_N, SMALL_N);
    size_t count = (size_t)n * (size_t)n;
    double *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b), *c = calloc(count, sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "out of memory\n");
        return 3;
    }
    for (size_t i = 0; i < count; i++) a[i] = lcg_unit();
    for (size_t i = 0; i < count; i++) b[i] = lcg_unit();

    double start = seconds();
    multiply(n, a, b, c);
    double elapsed = seconds() - start;

    uint64_t h = fnv1a(0xCBF29CE484222325ULL, c, count * sizeof *c);
    printf("checksum %016" PRIx64 "\n", h);
    printf("time %.9f\n", elapsed);
    free(a);
    free(b);
    free(c);
    return 0;
}
