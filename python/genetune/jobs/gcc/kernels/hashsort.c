/* hashsort: integer work: LSD radix sort of 32-bit keys, then counting them in an open-addressing
 * hash table (multiplicative hashing, linear probing).
 *
 * Usage: hashsort [default|small|N]   (N = number of keys)
 * Prints "checksum <hex>" (a hash of the sorted keys, the distinct count and the probe count) and
 * "time <seconds>" (sort plus hashing). Only unsigned arithmetic: no undefined behaviour for the
 * optimizer to exploit, so every correct flag set gives the same checksum.
 */
#define _POSIX_C_SOURCE 199309L
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { DEFAULT_N = 1 << 20, SMALL_N = 1 << 16 };

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
    for (unsigned shift = 0; shift < 32; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) count[((keys[i] >> shift) & 0xFFu) + 1]++;
        for (unsigned d = 0; d < 256; d++) count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++) tmp[count[(keys[i] >> shift) & 0xFFu]++] = keys[i];
        uint32_t *swap = keys;
        keys = tmp;
        tmp = swap;
    } /* 4 passes: the sorted keys end up back in the caller's `keys` */
}

/* Counts distinct keys; returns the number of probes (a measure of the table's clustering). */
static uint64_t count_distinct(size_t n, const uint32_t *restrict keys, uint32_t *restrict table, uint32_t *restrict counts,
                               size_t slots, size_t *distinct) {
    uint64_t probes = 0;
    size_t mask = slots - 1, used = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t key = keys[i] | 1u; /* 0 marks an empty slot */
        size_t slot = (size_t)((key * 0x9E3779B1u) >> 7) & mask;
        while (table[slot] != 0 && table[slot] != key) {
            slot = (slot + 1) & mask;
            probes++;
        }
        if (table[slot] == 0) {
            table[slot] = key;
            used++;
        }
        counts[slot]++;
    }
    *distinct = used;
    return probes;
}

int main(int argc, char **argv) {
    size_t n = (size_t)parse_size(argc, argv, DEFAULT_N, SMALL_N);
    size_t slots = 1;
    while (slots < 2 * n) slots <<= 1;
    uint32_t *keys = malloc(n * sizeof *keys), *tmp = malloc(n * sizeof *tmp);
    uint32_t *table = calloc(slots, sizeof *table), *counts = calloc(slots, sizeof *counts);
    if (!keys || !tmp || !table || !counts) {
        fprintf(stderr, "out of memory\n");
        return 3;
    }
    for (size_t i = 0; i < n; i++) keys[i] = lcg_next() % (uint32_t)(n * 4); /* some duplicates */

    double start = seconds();
    radix_sort(n, keys, tmp);
    size_t distinct = 0;
    uint64_t probes = count_distinct(n, keys, table, counts, slots, &distinct);
    double elapsed = seconds() - start;

    uint64_t h = 0xCBF29CE484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ keys[i]) * 0x100000001B3ULL;
    for (size_t s = 0; s < slots; s++) h = (h ^ counts[s]) * 0x100000001B3ULL;
    h = (h ^ (uint64_t)distinct) * 0x100000001B3ULL;
    h = (h ^ probes) * 0x100000001B3ULL;
    printf("checksum %016" PRIx64 "\n", h);
    printf("time %.9f\n", elapsed);
    free(keys);
    free(tmp);
    free(table);
    free(counts);
    return 0;
}
