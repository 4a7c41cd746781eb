// Shared helpers for the cnnkern kernels. Everything shape-dependent is a kernel
// argument; only dtype and (where it pays) small fixed sizes are template parameters.
#pragma once

namespace cnnkern {

// Accumulation type: half and bfloat16 accumulate in float, float in float,
// double in double.
template <typename T> struct Accum { using type = T; };

template <typename A, typename B> struct IsSame { static constexpr bool value = false; };
template <typename A> struct IsSame<A, A> { static constexpr bool value = true; };

// A convolution's geometry for up to three spatial dimensions; unused trailing
// dimensions have size 1, stride 1, dilation 1 and no padding.
struct ConvGeometry {
    int batch, c_in, c_out, groups;
    int in[3], out[3], kernel[3];
    int stride[3], dilation[3], pad_before[3];
};

}  // namespace cnnkern
