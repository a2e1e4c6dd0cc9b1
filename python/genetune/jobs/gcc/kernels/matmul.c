/* matmul: blocked double-precision matrix multiply C = A * B (n x n, row-major).
 *
 * Usage: matmul [default|small|N]   (N = matrix order)
 * Prints "checksum <hex>" (FNV-1a over the bits of C, so any change in rounding is seen)
 * and "time <seconds>" (the multiply only). Inputs come from a fixed LCG: deterministic.
 *
 * Tuning parameters (compile-time macros, -DNAME=VALUE; the defaults below are the kernel as
 * first written, a 64x64x64-blocked i-k-j loop):
 *   MM_ORDER     ikj: C[i][j] += A[i][k] * B[k][j] with j innermost (rows of B and C stream,
 *                the compiler vectorizes over j); ijk: a dot product per C[i][j] with k
 *                innermost (B walked down a column: strided, a serial sum).
 *   MM_BLOCK_I, MM_BLOCK_K, MM_BLOCK_J   tile sizes (any value >= 1; a tile larger than the
 *                matrix means no tiling along that loop). The B tile (BLOCK_K x BLOCK_J) is
 *                what must stay in cache while the rows of the I tile pass over it.
 *   MM_UNROLL_I  (ikj only) rows of C updated together, so each B element loaded is used
 *                UNROLL_I times (register blocking); must divide MM_BLOCK_I.
 *
 * Every C[i][j] accumulates its products in the same increasing k order in every variant
 * (tiles over k run in order, and the ijk sum starts from C[i][j]), so results are bit-identical
 * across parameters and -O levels; they change only when floating-point semantics change
 * (e.g. -ffast-math contracting a*b+c into an FMA).
 */
#define _POSIX_C_SOURCE 199309L
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ijk 1
#define ikj 2
#ifndef MM_ORDER
#define MM_ORDER ikj
#endif
#ifndef MM_BLOCK_I
#define MM_BLOCK_I 64
#endif
#ifndef MM_BLOCK_K
#define MM_BLOCK_K 64
#endif
#ifndef MM_BLOCK_J
#define MM_BLOCK_J 64
#endif
#ifndef MM_UNROLL_I
#define MM_UNROLL_I 1
#endif
#if MM_ORDER != ijk && MM_ORDER != ikj
#error "MM_ORDER must be ijk or ikj"
#endif
#if MM_BLOCK_I < 1 || MM_BLOCK_K < 1 || MM_BLOCK_J < 1
#error "MM_BLOCK_I, MM_BLOCK_K and MM_BLOCK_J must be >= 1"
#endif
#if MM_UNROLL_I != 1 && MM_UNROLL_I != 2 && MM_UNROLL_I != 4 && MM_UNROLL_I != 8
#error "MM_UNROLL_I must be 1, 2, 4 or 8"
#endif
#if MM_ORDER == ikj && MM_BLOCK_I % MM_UNROLL_I != 0
#error "MM_UNROLL_I must divide MM_BLOCK_I"
#endif

enum { DEFAULT_N = 448, SMALL_N = 128 };

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

static long min_of(long a, long b) { return a < b ? a : b; }

#if MM_ORDER == ikj
/* Rows i .. i+MM_UNROLL_I-1 of C, columns [jj, jmax), products k in [kk, kmax). */
static inline void rows_ikj(long n, long i, long kk, long kmax, long jj, long jmax, const double *restrict a,
                            const double *restrict b, double *restrict c) {
    for (long k = kk; k < kmax; k++) {
        const double *brow = b + k * n;
        double a0 = a[i * n + k];
        double *c0 = c + i * n;
#if MM_UNROLL_I >= 2
        double a1 = a[(i + 1) * n + k];
        double *c1 = c + (i + 1) * n;
#endif
#if MM_UNROLL_I >= 4
        double a2 = a[(i + 2) * n + k], a3 = a[(i + 3) * n + k];
        double *c2 = c + (i + 2) * n, *c3 = c + (i + 3) * n;
#endif
#if MM_UNROLL_I >= 8
        double a4 = a[(i + 4) * n + k], a5 = a[(i + 5) * n + k], a6 = a[(i + 6) * n + k], a7 = a[(i + 7) * n + k];
        double *c4 = c + (i + 4) * n, *c5 = c + (i + 5) * n, *c6 = c + (i + 6) * n, *c7 = c + (i + 7) * n;
#endif
        for (long j = jj; j < jmax; j++) {
            double bkj = brow[j];
            c0[j] += a0 * bkj;
#if MM_UNROLL_I >= 2
            c1[j] += a1 * bkj;
#endif
#if MM_UNROLL_I >= 4
            c2[j] += a2 * bkj;
            c3[j] += a3 * bkj;
#endif
#if MM_UNROLL_I >= 8
            c4[j] += a4 * bkj;
            c5[j] += a5 * bkj;
            c6[j] += a6 * bkj;
            c7[j] += a7 * bkj;
#endif
        }
    }
}
#endif

static void multiply(long n, const double *restrict a, const double *restrict b, double *restrict c) {
    for (long ii = 0; ii < n; ii += MM_BLOCK_I) {
        long imax = min_of(ii + MM_BLOCK_I, n);
        for (long kk = 0; kk < n; kk += MM_BLOCK_K) {
            long kmax = min_of(kk + MM_BLOCK_K, n);
            for (long jj = 0; jj < n; jj += MM_BLOCK_J) {
                long jmax = min_of(jj + MM_BLOCK_J, n);
#if MM_ORDER == ikj
                long i = ii;
                for (; i + MM_UNROLL_I <= imax; i += MM_UNROLL_I) rows_ikj(n, i, kk, kmax, jj, jmax, a, b, c);
                for (; i < imax; i++) { /* the rows left over at the matrix's edge, one at a time */
                    for (long k = kk; k < kmax; k++) {
                        double aik = a[i * n + k];
                        for (long j = jj; j < jmax; j++) c[i * n + j] += aik * b[k * n + j];
                    }
                }
#else
                for (long i = ii; i < imax; i++) {
                    for (long j = jj; j < jmax; j++) {
                        double sum = c[i * n + j];
                        for (long k = kk; k < kmax; k++) sum += a[i * n + k] * b[k * n + j];
                        c[i * n + j] = sum;
                    }
                }
#endif
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
