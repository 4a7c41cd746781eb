// Convolution as a GEMM, per group:  C[co, m] = sum_kk W[co, kk] * B[kk, m]
//   co  output channel of the group                  (rows, BM = 128 per block)
//   m   output position (n, o0, o1, o2)               (columns, BN = 128 per block)
//   kk  kernel tap and input channel, tap-major:      kk = tap * (C_in/g) + ci
// The weight is passed permuted to (C_out, taps, C_in/g) so that W rows are read
// contiguously; tap-major K lets the implicit loader fix each column's input
// position once per tap and walk channels by a plane stride (no division per element).
// One main loop serves two algorithms through the B loader:
//   IMPLICIT = true : B gathered from the input on the fly (implicit GEMM; zero padding,
//                     stride and dilation in the gather; no column matrix)
//   IMPLICIT = false: B read from a column matrix written by im2col_kernel (im2col +
//                     GEMM) for the positions [m_base, m_base + ldb) of one chunk.
// 256 threads, 8 x 8 accumulators per thread (rows ty*4 + {0..3} and 64 + ty*4 + ...,
// columns likewise with tx), BK = 8, shared tiles double-buffered: the next tile's
// global loads are in flight while the current one is multiplied.
#include "common.cuh"

namespace cnnkern {

constexpr int GEMM_BM = 128;
constexpr int GEMM_BN = 128;
constexpr int GEMM_BK = 8;
constexpr int GEMM_THREADS = 256;

template <typename IndexT>
struct Position {
    IndexT x_base;   // offset of (n, first channel of the group, 0, 0, 0) in x
    int b0, b1, b2;  // input coordinate of kernel tap (0, 0, 0)
    bool valid;
};

template <typename IndexT>
__device__ __forceinline__ Position<IndexT> decode_position(const ConvGeometry& g,
                                                            IndexT m, IndexT end,
                                                            int group) {
    Position<IndexT> p;
    p.valid = m < end;
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

// Offset in x of channel 0 of (position p, kernel tap), or -1 inside the padding.
template <typename IndexT>
__device__ __forceinline__ IndexT tap_offset(const ConvGeometry& g,
                                             const Position<IndexT>& p, int tap) {
    const int k2 = tap % g.kernel[2];
    const int k1 = (tap / g.kernel[2]) % g.kernel[1];
    const int k0 = tap / (g.kernel[2] * g.kernel[1]);
    const int i0 = p.b0 + k0 * g.dilation[0];
    const int i1 = p.b1 + k1 * g.dilation[1];
    const int i2 = p.b2 + k2 * g.dilation[2];
    if (!p.valid || i0 < 0 || i0 >= g.in[0] || i1 < 0 || i1 >= g.in[1] || i2 < 0 ||
        i2 >= g.in[2])
        return -1;
    return p.x_base + (static_cast<IndexT>(i0) * g.in[1] + i1) * g.in[2] + i2;
}

template <typename T, typename Acc>
__device__ __forceinline__ void load4(const T* p, Acc* out) {
    if constexpr (IsSame<T, float>::value) {
        const float4 v = *reinterpret_cast<const float4*>(p);
        out[0] = v.x; out[1] = v.y; out[2] = v.z; out[3] = v.w;
    } else {
        const double2 v0 = *reinterpret_cast<const double2*>(p);
        const double2 v1 = *reinterpret_cast<const double2*>(p + 2);
        out[0] = v0.x; out[1] = v0.y; out[2] = v1.x; out[3] = v1.y;
    }
}

template <typename T, typename IndexT, bool IMPLICIT>
__global__ void __launch_bounds__(GEMM_THREADS)
conv_gemm(const T* __restrict__ src, const T* __restrict__ w, const T* __restrict__ bias,
          T* __restrict__ y, ConvGeometry g, long long m_base, long long ldb) {
    using Acc = typename Accum<T>::type;
    __shared__ __align__(16) T As[2][GEMM_BK][GEMM_BM];
    __shared__ __align__(16) T Bs[2][GEMM_BK][GEMM_BN];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int group = blockIdx.z;
    const int cig = g.c_in / g.groups;
    const int cog = g.c_out / g.groups;
    const int kvol = g.kernel[0] * g.kernel[1] * g.kernel[2];
    const int k_total = cig * kvol;
    const int chunks = (cig + GEMM_BK - 1) / GEMM_BK;
    const int iters = kvol * chunks;
    const IndexT plane = static_cast<IndexT>(g.in[0]) * g.in[1] * g.in[2];
    const IndexT m0 = static_cast<IndexT>(blockIdx.x) * GEMM_BN;
    const int co0 = blockIdx.y * GEMM_BM;

    // A loader: row a_co, four consecutive k from a_k
    const int a_co = tid >> 1, a_k = (tid & 1) * 4;
    const bool a_ok = co0 + a_co < cog;
    const T* a_row = w + (static_cast<IndexT>(group) * cog + (a_ok ? co0 + a_co : 0)) *
                             k_total;
    // B loader: column b_m, four consecutive k from b_k
    const int b_m = tid & (GEMM_BN - 1), b_k = (tid >> 7) * 4;
    const IndexT my_m = m0 + b_m;
    const bool m_ok = my_m < ldb;
    Position<IndexT> pos{};
    if (IMPLICIT) pos = decode_position<IndexT>(g, m_base + my_m, m_base + ldb, group);

    T ra[4], rb[4];
    auto load = [&](int t) {
        const int tap = t / chunks;
        const int c0 = (t - tap * chunks) * GEMM_BK;
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int c = c0 + a_k + r;
            ra[r] = (a_ok && c < cig) ? a_row[tap * cig + c] : T(0);
        }
        if (IMPLICIT) {
            const IndexT off = tap_offset<IndexT>(g, pos, tap);
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int c = c0 + b_k + r;
                rb[r] = (off >= 0 && c < cig) ? src[off + c * plane] : T(0);
            }
        } else {
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int c = c0 + b_k + r;
                rb[r] = (m_ok && c < cig)
                    ? src[(static_cast<IndexT>(group) * k_total + tap * cig + c) * ldb + my_m]
                    : T(0);
            }
        }
    };
    auto store = [&](int buf) {
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            As[buf][a_k + r][a_co] = ra[r];
            Bs[buf][b_k + r][b_m] = rb[r];
        }
    };

    Acc acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = Acc(0);

    load(0);
    store(0);
    __syncthreads();
    for (int t = 0; t < iters; ++t) {
        const int buf = t & 1;
        if (t + 1 < iters) load(t + 1);
#pragma unroll
        for (int k = 0; k < GEMM_BK; ++k) {
            Acc a[8], b[8];
            load4<T, Acc>(&As[buf][k][ty * 4], a);
            load4<T, Acc>(&As[buf][k][64 + ty * 4], a + 4);
            load4<T, Acc>(&Bs[buf][k][tx * 4], b);
            load4<T, Acc>(&Bs[buf][k][64 + tx * 4], b + 4);
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] += a[i] * b[j];
        }
        if (t + 1 < iters) store(buf ^ 1);
        __syncthreads();
    }

    const IndexT pos_vol = static_cast<IndexT>(g.out[0]) * g.out[1] * g.out[2];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int co = co0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
        if (co >= cog) continue;
        const int c_glob = group * cog + co;
        const Acc bv = bias ? static_cast<Acc>(bias[c_glob]) : Acc(0);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const IndexT m = m0 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + j - 4);
            if (m >= ldb) continue;
            const IndexT mg = m_base + m;
            const IndexT n = mg / pos_vol;
            const IndexT p = mg - n * pos_vol;
            y[(n * g.c_out + c_glob) * pos_vol + p] = static_cast<T>(acc[i][j] + bv);
        }
    }
}

// Column matrix of one chunk, tap-major rows: cols[group][tap * cig + ci][m], m in
// [0, ldb) for positions m_base + m; consecutive threads along m (coalesced stores).
template <typename T, typename IndexT>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ cols,
                              ConvGeometry g, long long m_base, long long ldb) {
    const int cig = g.c_in / g.groups;
    const int kvol = g.kernel[0] * g.kernel[1] * g.kernel[2];
    const int k_total = cig * kvol;
    const IndexT plane = static_cast<IndexT>(g.in[0]) * g.in[1] * g.in[2];
    const IndexT total = static_cast<IndexT>(g.groups) * k_total * ldb;
    for (IndexT idx = static_cast<IndexT>(blockIdx.x) * blockDim.x + threadIdx.x;
         idx < total; idx += static_cast<IndexT>(gridDim.x) * blockDim.x) {
        const IndexT m = idx % ldb;
        const IndexT rest = idx / ldb;
        const int kk = static_cast<int>(rest % k_total);
        const int group = static_cast<int>(rest / k_total);
        const int tap = kk / cig, ci = kk - tap * cig;
        const Position<IndexT> p = decode_position<IndexT>(g, m_base + m, m_base + ldb,
                                                           group);
        const IndexT off = tap_offset<IndexT>(g, p, tap);
        cols[idx] = off >= 0 ? x[off + ci * plane] : T(0);
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
