// Direct convolution (cross-correlation), one thread per output element.
//
// The generic no-workspace reference on the GPU: stride, per-side zero padding,
// dilation and groups (channel multipliers included) are arguments, for 1-D, 2-D and
// 3-D (a lower dimension passes size 1 for the unused trailing dimensions). IndexT is
// int when every byte extent fits in 31 bits and long long otherwise.
#include "common.cuh"

namespace cnnkern {

template <typename T, typename IndexT>
__global__ void conv_direct(const T* __restrict__ x, const T* __restrict__ w,
                            const T* __restrict__ bias, T* __restrict__ y,
                            ConvGeometry g) {
    using Acc = typename Accum<T>::type;
    const IndexT out_vol = static_cast<IndexT>(g.out[0]) * g.out[1] * g.out[2];
    const IndexT total = static_cast<IndexT>(g.batch) * g.c_out * out_vol;
    const int cig = g.c_in / g.groups;
    const int cog = g.c_out / g.groups;
    for (IndexT idx = static_cast<IndexT>(blockIdx.x) * blockDim.x + threadIdx.x;
         idx < total; idx += static_cast<IndexT>(gridDim.x) * blockDim.x) {
        IndexT rest = idx;
        const int o2 = static_cast<int>(rest % g.out[2]); rest /= g.out[2];
        const int o1 = static_cast<int>(rest % g.out[1]); rest /= g.out[1];
        const int o0 = static_cast<int>(rest % g.out[0]); rest /= g.out[0];
        const int co = static_cast<int>(rest % g.c_out);
        const IndexT n = rest / g.c_out;
        const int group = co / cog;
        Acc acc = bias ? static_cast<Acc>(bias[co]) : Acc(0);
        for (int ci = 0; ci < cig; ++ci) {
            const IndexT plane = (n * g.c_in + group * cig + ci) *
                                 static_cast<IndexT>(g.in[0]) * g.in[1] * g.in[2];
            const T* wp = w + (static_cast<IndexT>(co) * cig + ci) *
                                  g.kernel[0] * g.kernel[1] * g.kernel[2];
            for (int k0 = 0; k0 < g.kernel[0]; ++k0) {
                const int i0 = o0 * g.stride[0] - g.pad_before[0] + k0 * g.dilation[0];
                if (i0 < 0 || i0 >= g.in[0]) continue;
                for (int k1 = 0; k1 < g.kernel[1]; ++k1) {
                    const int i1 = o1 * g.stride[1] - g.pad_before[1] + k1 * g.dilation[1];
                    if (i1 < 0 || i1 >= g.in[1]) continue;
                    for (int k2 = 0; k2 < g.kernel[2]; ++k2) {
                        const int i2 = o2 * g.stride[2] - g.pad_before[2] +
                                       k2 * g.dilation[2];
                        if (i2 < 0 || i2 >= g.in[2]) continue;
                        const IndexT xi = plane + (static_cast<IndexT>(i0) * g.in[1] + i1) *
                                                      g.in[2] + i2;
                        const int wi = (k0 * g.kernel[1] + k1) * g.kernel[2] + k2;
                        acc += static_cast<Acc>(x[xi]) * static_cast<Acc>(wp[wi]);
                    }
                }
            }
        }
        y[idx] = static_cast<T>(acc);
    }
}

template __global__ void conv_direct<float, int>(const float*, const float*, const float*,
                                                 float*, ConvGeometry);
template __global__ void conv_direct<float, long long>(const float*, const float*,
                                                       const float*, float*, ConvGeometry);
template __global__ void conv_direct<double, int>(const double*, const double*,
                                                  const double*, double*, ConvGeometry);
template __global__ void conv_direct<double, long long>(const double*, const double*,
                                                        const double*, double*,
                                                        ConvGeometry);

}  // namespace cnnkern
