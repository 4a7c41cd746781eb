// Convolution as a GEMM, C[co, m] = sum_kk W[co, kk] * B[kk, m] per group, with
//   co  an output channel of the group            (GEMM rows, BM per block)
//   m   an output position, (n, o0, o1, o2)        (GEMM columns, BN per block)
//   kk  an input channel and kernel tap (ci, k0, k1, k2) of the group (reduction)
// One tiled main loop serves two algorithms through the B loader:
//   IMPLICIT = true : B is gathered from the input on the fly (implicit GEMM; no
//                     column matrix; zero padding, stride and dilation in the gather)
//   IMPLICIT = false: B is a column matrix written by im2col_kernel (im2col + GEMM),
//                     covering the positions [m_base, m_base + ldb) of this chunk.
// Tiles: BM = 64 channels x BN = 128 positions x BK = 16, 256 threads, each thread
// 4 x 8 accumulators (rows ty + 16 i, columns tx + 16 j: conflict-free shared reads).
#include "common.cuh"

namespace cnnkern {

constexpr int GEMM_BM = 64;
constexpr int GEMM_BN = 128;
constexpr int GEMM_BK = 16;
constexpr int GEMM_THREADS = 256;

template <typename IndexT>
struct Position {
    IndexT x_base;   // offset of (n, first channel of the group, 0, 0, 0) in x
    int b0, b1, b2;  // input coordinate of kernel tap (0, 0, 0)
    bool valid;
};

template <typename IndexT>
__device__ __forceinline__ Position<IndexT> decode_position(const ConvGeometry& g,
                                                            IndexT m, IndexT total,
                                                            int group) {
    Position<IndexT> p;
    p.valid = m < total;
    if (!p.valid) m = 0;
    const IndexT pos_vol = static_cast<IndexT>(g.out[0]) * g.out[1] * g.out[2];
    const IndexT n = m / pos_vol;
    IndexT pos = m - n * pos_vol;
    const int o2 = static_cast<int>(pos % g.out[2]); pos /= g.out[2];
    const int o1 = static_cast<int>(pos % g.out[1]);
    const int o0 = static_cast<int>(pos / g.out[1]);
    p.b0 = o0 * g.stride[0] - g.pad_before[0];
    p.b1 = o1 * g.stride[1] - g.pad_before[1];
    p.b2 = o2 * g.stride[2] - g.pad_before[2];
    const int cig = g.c_in / g.groups;
    p.x_base = (n * g.c_in + static_cast<IndexT>(group) * cig) *
               (static_cast<IndexT>(g.in[0]) * g.in[1] * g.in[2]);
    return p;
}

// The input element that tap kk of position p reads, or zero in the padding.
template <typename T, typename IndexT>
__device__ __forceinline__ T gather(const T* __restrict__ x, const ConvGeometry& g,
                                    const Position<IndexT>& p, int kk, int k_total) {
    if (!p.valid || kk >= k_total) return T(0);
    const int kvol = g.kernel[0] * g.kernel[1] * g.kernel[2];
    const int ci = kk / kvol;
    int r = kk - ci * kvol;
    const int k2 = r % g.kernel[2]; r /= g.kernel[2];
    const int k1 = r % g.kernel[1];
    const int k0 = r / g.kernel[1];
    const int i0 = p.b0 + k0 * g.dilation[0];
    const int i1 = p.b1 + k1 * g.dilation[1];
    const int i2 = p.b2 + k2 * g.dilation[2];
    if (i0 < 0 || i0 >= g.in[0] || i1 < 0 || i1 >= g.in[1] || i2 < 0 || i2 >= g.in[2])
        return T(0);
    const IndexT plane = static_cast<IndexT>(g.in[0]) * g.in[1] * g.in[2];
    return x[p.x_base + ci * plane + (static_cast<IndexT>(i0) * g.in[1] + i1) * g.in[2] + i2];
}

template <typename T, typename IndexT, bool IMPLICIT>
__global__ void __launch_bounds__(GEMM_THREADS)
conv_gemm(const T* __restrict__ src, const T* __restrict__ w, const T* __restrict__ bias,
          T* __restrict__ y, ConvGeometry g, long long m_base, long long ldb) {
    using Acc = typename Accum<T>::type;
    __shared__ T As[GEMM_BK][GEMM_BM];
    __shared__ T Bs[GEMM_BK][GEMM_BN];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int group = blockIdx.z;
    const int cig = g.c_in / g.groups;
    const int cog = g.c_out / g.groups;
    const int kvol = g.kernel[0] * g.kernel[1] * g.kernel[2];
    const int k_total = cig * kvol;
    const IndexT pos_vol = static_cast<IndexT>(g.out[0]) * g.out[1] * g.out[2];
    // columns of this block: chunk-local index in [0, ldb), global = m_base + local
    const IndexT m0 = static_cast<IndexT>(blockIdx.x) * GEMM_BN;
    const int co0 = blockIdx.y * GEMM_BM;

    // B loader: one column per thread for the whole K loop, rows b_row + 2 i
    const int b_col = tid % GEMM_BN, b_row = tid / GEMM_BN;
    const IndexT my_m = m0 + b_col;
    Position<IndexT> pos;
    if (IMPLICIT) pos = decode_position<IndexT>(g, m_base + my_m, m_base + ldb, group);
    const bool col_ok = my_m < ldb;
    // A loader: k column a_k, rows a_row + 16 i
    const int a_k = tid % GEMM_BK, a_row = tid / GEMM_BK;
    const T* w_group = w + static_cast<IndexT>(group) * cog * k_total;

    Acc acc[4][8];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = Acc(0);

    for (int k0 = 0; k0 < k_total; k0 += GEMM_BK) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int co = co0 + a_row + 16 * i;
            const int kk = k0 + a_k;
            As[a_k][a_row + 16 * i] = (co < cog && kk < k_total)
                ? w_group[static_cast<IndexT>(co) * k_total + kk] : T(0);
        }
#pragma unroll
        for (int i = 0; i < GEMM_BK / 2; ++i) {
            const int r = b_row + 2 * i;
            const int kk = k0 + r;
            T v;
            if (IMPLICIT) {
                v = gather<T, IndexT>(src, g, pos, kk, k_total);
            } else {
                v = (col_ok && kk < k_total)
                    ? src[(static_cast<IndexT>(group) * k_total + kk) * ldb + my_m] : T(0);
            }
            Bs[r][b_col] = v;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GEMM_BK; ++kk) {
            Acc a[4], b[8];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = static_cast<Acc>(As[kk][ty + 16 * i]);
#pragma unroll
            for (int j = 0; j < 8; ++j) b[j] = static_cast<Acc>(Bs[kk][tx + 16 * j]);
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int co = co0 + ty + 16 * i;
        if (co >= cog) continue;
        const int c_glob = group * cog + co;
        const Acc bv = bias ? static_cast<Acc>(bias[c_glob]) : Acc(0);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const IndexT m = m0 + tx + 16 * j;
            if (m >= ldb) continue;
            const IndexT mg = m_base + m;
            const IndexT n = mg / pos_vol;
            const IndexT p = mg - n * pos_vol;
            y[(n * g.c_out + c_glob) * pos_vol + p] = static_cast<T>(acc[i][j] + bv);
        }
    }
}

// Column matrix of one chunk: cols[group][kk][m], m in [0, ldb) for positions
// m_base + m; one thread per element, consecutive threads along m (coalesced stores).
template <typename T, typename IndexT>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ cols,
                              ConvGeometry g, long long m_base, long long ldb) {
    const int cig = g.c_in / g.groups;
    const int kvol = g.kernel[0] * g.kernel[1] * g.kernel[2];
    const int k_total = cig * kvol;
    const IndexT total = static_cast<IndexT>(g.groups) * k_total * ldb;
    for (IndexT idx = static_cast<IndexT>(blockIdx.x) * blockDim.x + threadIdx.x;
         idx < total; idx += static_cast<IndexT>(gridDim.x) * blockDim.x) {
        const IndexT m = idx % ldb;
        const IndexT rest = idx / ldb;
        const int kk = static_cast<int>(rest % k_total);
        const int group = static_cast<int>(rest / k_total);
        const Position<IndexT> p = decode_position<IndexT>(g, m_base + m, m_base + ldb,
                                                           group);
        cols[idx] = gather<T, IndexT>(x, g, p, kk, k_total);
    }
}

#define CNNKERN_GEMM_INSTANCES(T, I)                                                   \
    template __global__ void conv_gemm<T, I, true>(const T*, const T*, const T*, T*,   \
                                                   ConvGeometry, long long, long long); \
    template __global__ void conv_gemm<T, I, false>(const T*, const T*, const T*, T*,  \
                                                    ConvGeometry, long long, long long); \
    template __global__ void im2col_kernel<T, I>(const T*, T*, ConvGeometry, long long, \
                                                 long long);
CNNKERN_GEMM_INSTANCES(float, int)
CNNKERN_GEMM_INSTANCES(float, long long)
CNNKERN_GEMM_INSTANCES(double, int)
CNNKERN_GEMM_INSTANCES(double, long long)
#undef CNNKERN_GEMM_INSTANCES

}  // namespace cnnkern
