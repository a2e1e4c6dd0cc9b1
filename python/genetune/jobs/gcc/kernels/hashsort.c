/* hashsort: integer work: LSD radix sort of 32-bit keys, then counting them in an open-addressing
 * hash table (multiplicative hashing, linear probing).
 *
 * Usage: hashsort [default|small|N]   (N = number of keys)
 * Prints "checksum <hex>" (a hash of the sorted keys, the distinct count and the probe count) and
 * "time <seconds>" (sort plus hashing). Only unsigned arithmetic: no undefined behaviour for the
 * optimizer to exploit, so every correct flag set gives the same checksum.
 *
 * Tuning parameters (compile-time macros, -DNAME=VALUE; the defaults are the kernel as first
 * written: byte-wise radix sort, no prefetching):
 *   HS_RADIX_BITS      bits per radix pass (4, 8, 11 or 16: 8, 4, 3 or 2 passes over the keys);
 *                      fewer passes move the keys fewer times, but a wider count table and
 *                      more scatter targets than the caches and TLB hold cost more per pass.
 *   HS_PREFETCH        how many keys ahead the hash loop prefetches its table slot (0: none);
 *                      the table is larger than the caches, so each probe is a cache miss.
 *   HS_PREFETCH_WRITE  (with HS_PREFETCH) 1: prefetch for writing (the slot is written), 0: for reading.
 *   HS_LAYOUT          split: the table's keys and counts in two arrays (two cache misses per
 *                      new slot); paired: each slot's key and count side by side (one).
 *
 * The sorted keys, the table and the probe count are the same in every variant.
 */
#define _POSIX_C_SOURCE 199309L
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef HS_RADIX_BITS
#define HS_RADIX_BITS 8
#endif
#ifndef HS_PREFETCH
#define HS_PREFETCH 0
#endif
#ifndef HS_PREFETCH_WRITE
#define HS_PREFETCH_WRITE 0
#endif
#define split 1
#define paired 2
#ifndef HS_LAYOUT
#define HS_LAYOUT split
#endif
#if HS_LAYOUT != split && HS_LAYOUT != paired
#error "HS_LAYOUT must be split or paired"
#endif
#if HS_RADIX_BITS != 4 && HS_RADIX_BITS != 8 && HS_RADIX_BITS != 11 && HS_RADIX_BITS != 16
#error "HS_RADIX_BITS must be 4, 8, 11 or 16"
#endif
#if HS_PREFETCH < 0 || HS_PREFETCH > 1024
#error "HS_PREFETCH must be in 0..1024"
#endif
#if HS_PREFETCH_WRITE != 0 && HS_PREFETCH_WRITE != 1
#error "HS_PREFETCH_WRITE must be 0 or 1"
#endif

enum { DEFAULT_N = 1 << 20, SMALL_N = 1 << 16 };
enum { RADIX = 1 << HS_RADIX_BITS, PASSES = (32 + HS_RADIX_BITS - 1) / HS_RADIX_BITS };

static uint64_t lcg_state = 0x2545F4914F6CDD1DULL;

static uint32_t lcg_next(void) {
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg_state >> 32);
}

static long parse_size(int argc, char **argv, long dflt, long small) {
    if (argc < 2 || strcmp(argv[1], "default") == 0) return dflt;
    if (strcmp(argv[1], "small") == 0) return small;
    char *end = NULL;
    long n = strtol(argv[1], &end, 10);
    if (*end != '\0' || n < 1 || n > (1L << 28)) {
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

static void radix_sort(size_t n, uint32_t *restrict keys, uint32_t *restrict tmp) {
    static size_t count[RADIX + 1];
    uint32_t *src = keys, *dst = tmp;
    for (unsigned pass = 0; pass < PASSES; pass++) {
        unsigned shift = pass * HS_RADIX_BITS;
        memset(count, 0, sizeof count);
        for (size_t i = 0; i < n; i++) count[((src[i] >> shift) & (RADIX - 1u)) + 1]++;
        for (unsigned d = 0; d < RADIX; d++) count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++) dst[count[(src[i] >> shift) & (RADIX - 1u)]++] = src[i];
        uint32_t *swap = src;
        src = dst;
        dst = swap;
    }
    if (src != keys) memcpy(keys, src, n * sizeof *keys); /* an odd number of passes ends in tmp */
}

/* The hash table: 2 * slots words, each slot's key (0: empty) and count. */
#if HS_LAYOUT == paired
#define KEY_AT(cells, slots, s) (cells)[2 * (s)]
#define COUNT_AT(cells, slots, s) (cells)[2 * (s) + 1]
#else
#define KEY_AT(cells, slots, s) (cells)[(s)]
#define COUNT_AT(cells, slots, s) (cells)[(slots) + (s)]
#endif

/* Counts distinct keys; returns the number of probes (a measure of the table's clustering). */
static uint64_t count_distinct(size_t n, const uint32_t *restrict keys, uint32_t *restrict cells, size_t slots, size_t *distinct) {
    uint64_t probes = 0;
    size_t mask = slots - 1, used = 0;
    for (size_t i = 0; i < n; i++) {
#if HS_PREFETCH > 0
        if (i + HS_PREFETCH < n) {
            size_t ahead = (size_t)(((keys[i + HS_PREFETCH] | 1u) * 0x9E3779B1u) >> 7) & mask;
            __builtin_prefetch(&KEY_AT(cells, slots, ahead), HS_PREFETCH_WRITE, 1);
#if HS_LAYOUT == split
            __builtin_prefetch(&COUNT_AT(cells, slots, ahead), 1, 1);
#endif
        }
#endif
        uint32_t key = keys[i] | 1u; /* 0 marks an empty slot */
        size_t slot = (size_t)((key * 0x9E3779B1u) >> 7) & mask;
        while (KEY_AT(cells, slots, slot) != 0 && KEY_AT(cells, slots, slot) != key) {
            slot = (slot + 1) & mask;
            probes++;
        }
        if (KEY_AT(cells, slots, slot) == 0) {
            KEY_AT(cells, slots, slot) = key;
            used++;
        }
        COUNT_AT(cells, slots, slot)++;
    }
    *distinct = used;
    return probes;
}

int main(int argc, char **argv) {
    size_t n = (size_t)parse_size(argc, argv, DEFAULT_N, SMALL_N);
    size_t slots = 1;
    while (slots < 2 * n) slots <<= 1;
    uint32_t *keys = malloc(n * sizeof *keys), *tmp = malloc(n * sizeof *tmp);
    uint32_t *cells = calloc(2 * slots, sizeof *cells);
    if (!keys || !tmp || !cells) {
        fprintf(stderr, "out of memory\n");
        return 3;
    }
    for (size_t i = 0; i < n; i++) keys[i] = lcg_next() % (uint32_t)(n * 4); /* some duplicates */

    double start = seconds();
    radix_sort(n, keys, tmp);
    size_t distinct = 0;
    uint64_t probes = count_distinct(n, keys, cells, slots, &distinct);
    double elapsed = seconds() - start;

    uint64_t h = 0xCBF29CE484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ keys[i]) * 0x100000001B3ULL;
    for (size_t s = 0; s < slots; s++) h = (h ^ COUNT_AT(cells, slots, s)) * 0x100000001B3ULL;
    h = (h ^ (uint64_t)distinct) * 0x100000001B3ULL;
    h = (h ^ probes) * 0x100000001B3ULL;
    printf("checksum %016" PRIx64 "\n", h);
    printf("time %.9f\n", elapsed);
    free(keys);
    free(tmp);
    free(cells);
    return 0;
}
