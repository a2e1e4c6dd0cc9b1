// SGEMM-lite: C = A * B for n x n float matrices, the kernel genetune's nvcc example tunes.
//
//   ./kernel <block_size> <n> <reps>
//
// block_size: threads per block, a multiple of 32 in [32, 1024] (the launch parameter the search
// tunes); n: the matrix size (32..8192); reps: timed launches (1..1000) after 2 warm-up launches.
//
// Prints, on success (exit 0):
//   checksum <integer>    a weighted sum over every element of C, exact
//   time <seconds>        the median kernel time over the timed launches (cudaEvents)
//   gflops <value>        2 n^3 / time
//   regs <n>              registers per thread of this build (cudaFuncGetAttributes)
//   local_bytes <n>       local memory per thread (register spills, among others)
//
// Exit codes, with one line on stderr: 2 bad arguments, 3 a CUDA error (no device, out of
// memory, a launch this build cannot make: e.g. block_size 1024 with more than 64 registers
// per thread), 4 a wrong result (the self-check below).
//
// Why the result is exact whatever the flags: A and B hold small integers (-2..2), so every
// product and every partial sum of a dot product is an integer of magnitude <= 4 n <= 32768,
// exactly representable in float (24-bit significand). Reassociation, FMA contraction,
// --use_fast_math (flush-to-zero, approximate division, square root and transcendentals, none of
// which this kernel uses on non-integers) and the tile shapes that depend on block_size can
// therefore not change a single bit of C: any build and block size must print the same checksum,
// and a different one is a bug, never rounding.
//
// The self-check recomputes 256 deterministic elements of C (and the four corners) on the host,
// in integers, and compares them exactly.

#include <cuda_runtime.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

// ----- device code -------------------------------------------------------------------------------

#define TK 32  // the k-tile width, the tile's column count and blockDim.x (one warp per tile row)
#define TM 8   // rows of C per thread: a block computes (blockDim.y * TM) x TK elements of C

// A block of (TK, block_size / TK) threads computes a tile of C of (blockDim.y * TM) rows and TK
// columns; thread (tx, ty) owns the column tx of the rows ty, ty + blockDim.y, ... The k loop
// walks the tiles of A (rows x TK) and B (TK x TK) through shared memory (dynamic size: it depends
// on block_size). A warp reads one row of the A tile (a broadcast) and one row of the B tile
// (consecutive words), so neither read has bank conflicts; global loads are coalesced.
extern "C" __global__ void sgemm_tiled(const float* __restrict__ a, const float* __restrict__ b,
                                       float* __restrict__ c, int n) {
    extern __shared__ float smem[];
    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int ny = blockDim.y;
    const int rows = ny * TM;
    float* as = smem;              // [rows][TK]
    float* bs = smem + rows * TK;  // [TK][TK]
    const int nthreads = TK * ny;
    const int tid = ty * TK + tx;
    const int row0 = blockIdx.y * rows;
    const int col0 = blockIdx.x * TK;

    float acc[TM];
#pragma unroll
    for (int i = 0; i < TM; ++i) acc[i] = 0.0f;

    for (int k0 = 0; k0 < n; k0 += TK) {
        for (int e = tid; e < rows * TK; e += nthreads) {
            const int r = row0 + e / TK;
            const int k = k0 + e % TK;
            as[e] = (r < n && k < n) ? a[(size_t)r * n + k] : 0.0f;
        }
        for (int e = tid; e < TK * TK; e += nthreads) {
            const int k = k0 + e / TK;
            const int col = col0 + e % TK;
            bs[e] = (k < n && col < n) ? b[(size_t)k * n + col] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TK; ++kk) {
            const float bv = bs[kk * TK + tx];
#pragma unroll
            for (int i = 0; i < TM; ++i) acc[i] += as[(ty + i * ny) * TK + kk] * bv;
        }
        __syncthreads();
    }

    const int col = col0 + tx;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int r = row0 + ty + i * ny;
        if (r < n && col < n) c[(size_t)r * n + col] = acc[i];
    }
}

// ----- host code ---------------------------------------------------------------------------------

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitCuda = 3;
constexpr int kExitWrong = 4;
constexpr int kWarmup = 2;
constexpr int kChecked = 256;

void check(cudaError_t err, const char* what) {
    if (err != cudaSuccess) {
        std::fprintf(stderr, "cuda error: %s: %s (%s)\n", what, cudaGetErrorString(err), cudaGetErrorName(err));
        std::exit(kExitCuda);
    }
}

long parse_int(const char* text, const char* name, long low, long high) {
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < low || value > high) {
        std::fprintf(stderr, "bad argument: %s must be an integer in [%ld, %ld], got '%s'\n", name, low, high, text);
        std::exit(kExitUsage);
    }
    return value;
}

// The inputs: deterministic small integers in -2..2 (a 32-bit integer hash of the position).
float input_value(uint32_t row, uint32_t col, uint32_t salt) {
    uint32_t h = row * 0x9E3779B1u ^ (col + salt) * 0x85EBCA77u;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    h *= 0x297A2D39u;
    h ^= h >> 15;
    return static_cast<float>(static_cast<int>(h % 5u) - 2);
}

// C's elements are integers (see the top of the file): anything else is a wrong result.
bool as_integer(float value, int64_t* out) {
    if (!(value >= -16777216.0f && value <= 16777216.0f)) return false;  // also false for NaN
    const int64_t rounded = static_cast<int64_t>(value);
    if (static_cast<float>(rounded) != value) return false;
    *out = rounded;
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s <block_size> <n> <reps>\n", argc > 0 ? argv[0] : "kernel");
        return kExitUsage;
    }
    const int block_size = static_cast<int>(parse_int(argv[1], "block_size", 32, 1024));
    const int n = static_cast<int>(parse_int(argv[2], "n", 32, 8192));
    const int reps = static_cast<int>(parse_int(argv[3], "reps", 1, 1000));
    if (block_size % TK != 0) {
        std::fprintf(stderr, "bad argument: block_size must be a multiple of %d, got %d\n", TK, block_size);
        return kExitUsage;
    }

    int devices = 0;
    check(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
    if (devices < 1) {
        std::fprintf(stderr, "cuda error: no CUDA device visible\n");
        return kExitCuda;
    }

    // Can this build launch blocks of block_size threads at all? (Registers per thread times
    // threads per block must fit the SM's register file: ptxas flags decide the former.)
    cudaFuncAttributes attr;
    check(cudaFuncGetAttributes(&attr, sgemm_tiled), "cudaFuncGetAttributes");
    if (block_size > attr.maxThreadsPerBlock) {
        std::fprintf(stderr,
                     "cuda error: block_size %d exceeds the %d threads per block this build allows "
                     "(%d registers per thread)\n",
                     block_size, attr.maxThreadsPerBlock, attr.numRegs);
        return kExitCuda;
    }

    const size_t count = static_cast<size_t>(n) * n;
    std::vector<float> a(count), b(count), c(count);
    for (int r = 0; r < n; ++r) {
        for (int k = 0; k < n; ++k) {
            a[static_cast<size_t>(r) * n + k] = input_value(r, k, 1u);
            b[static_cast<size_t>(r) * n + k] = input_value(r, k, 2u);
        }
    }

    float *da = nullptr, *db = nullptr, *dc = nullptr;
    check(cudaMalloc(&da, count * sizeof(float)), "cudaMalloc");
    check(cudaMalloc(&db, count * sizeof(float)), "cudaMalloc");
    check(cudaMalloc(&dc, count * sizeof(float)), "cudaMalloc");
    check(cudaMemcpy(da, a.data(), count * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy A");
    check(cudaMemcpy(db, b.data(), count * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy B");
    check(cudaMemset(dc, 0xFF, count * sizeof(float)), "cudaMemset C");  // NaNs: unwritten elements show

    const dim3 block(TK, block_size / TK);
    const int rows = static_cast<int>(block.y) * TM;
    const dim3 grid((n + TK - 1) / TK, (n + rows - 1) / rows);
    const size_t shared_bytes = static_cast<size_t>(rows + TK) * TK * sizeof(float);

    cudaEvent_t start, stop;
    check(cudaEventCreate(&start), "cudaEventCreate");
    check(cudaEventCreate(&stop), "cudaEventCreate");
    std::vector<float> times_ms;
    for (int i = 0; i < kWarmup + reps; ++i) {
        check(cudaEventRecord(start), "cudaEventRecord");
        sgemm_tiled<<<grid, block, shared_bytes>>>(da, db, dc, n);
        check(cudaGetLastError(), "kernel launch");
        check(cudaEventRecord(stop), "cudaEventRecord");
        check(cudaEventSynchronize(stop), "kernel execution");
        float ms = 0.0f;
        check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
        if (i >= kWarmup) times_ms.push_back(ms);
    }
    check(cudaMemcpy(c.data(), dc, count * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy C");

    // The self-check: sampled elements (corners first), recomputed exactly on the host.
    for (int s = 0; s < kChecked + 4; ++s) {
        int r, col;
        if (s < 4) {
            r = (s & 1) ? n - 1 : 0;
            col = (s & 2) ? n - 1 : 0;
        } else {
            r = static_cast<int>((static_cast<int64_t>(s) * 7919) % n);
            col = static_cast<int>((static_cast<int64_t>(s) * 104729 + 17) % n);
        }
        int64_t expected = 0;
        for (int k = 0; k < n; ++k) {
            expected += static_cast<int64_t>(a[static_cast<size_t>(r) * n + k]) *
                        static_cast<int64_t>(b[static_cast<size_t>(k) * n + col]);
        }
        int64_t got = 0;
        const float value = c[static_cast<size_t>(r) * n + col];
        if (!as_integer(value, &got) || got != expected) {
            std::fprintf(stderr, "wrong result: C[%d][%d] = %.9g, expected %lld\n", r, col, value,
                         static_cast<long long>(expected));
            return kExitWrong;
        }
    }

    // The checksum: every element, weighted by its position (so a transposed or shifted C differs).
    int64_t checksum = 0;
    for (int r = 0; r < n; ++r) {
        for (int col = 0; col < n; ++col) {
            int64_t value = 0;
            if (!as_integer(c[static_cast<size_t>(r) * n + col], &value)) {
                std::fprintf(stderr, "wrong result: C[%d][%d] = %.9g is not an integer\n", r, col,
                             c[static_cast<size_t>(r) * n + col]);
                return kExitWrong;
            }
            checksum += value * ((static_cast<int64_t>(r) * 131 + static_cast<int64_t>(col) * 31) % 97 + 1);
        }
    }

    std::sort(times_ms.begin(), times_ms.end());
    const size_t m = times_ms.size();
    const double median_ms = (m % 2) ? times_ms[m / 2] : 0.5 * (static_cast<double>(times_ms[m / 2 - 1]) + times_ms[m / 2]);
    const double seconds = median_ms * 1e-3;

    std::printf("checksum %lld\n", static_cast<long long>(checksum));
    std::printf("time %.9e\n", seconds);
    std::printf("gflops %.3f\n", seconds > 0 ? 2.0 * n * static_cast<double>(n) * n / seconds * 1e-9 : 0.0);
    std::printf("regs %d\n", attr.numRegs);
    std::printf("local_bytes %zu\n", attr.localSizeBytes);

    check(cudaEventDestroy(start), "cudaEventDestroy");
    check(cudaEventDestroy(stop), "cudaEventDestroy");
    check(cudaFree(da), "cudaFree");
    check(cudaFree(db), "cudaFree");
    check(cudaFree(dc), "cudaFree");
    return 0;
}
