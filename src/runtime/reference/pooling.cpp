// max/avg pooling (PyTorch windows, ceil_mode, count_include_pad) and adaptive pooling.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels.h"

namespace compress::runtime::reference {
namespace {

constexpr StatusCode kBad = StatusCode::kInvalidArgument;

struct PoolGeometry {
  int64_t n = 0, c = 0, h = 0, w = 0, oh = 0, ow = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
};

// Checks the geometry only; each pool checks the input's dtype.
Expected<PoolGeometry> pool_geometry(const ir::Node& node, const Tensor& x) {
  COMPRESS_RETURN_IF_ERROR(check_rank(x, 4, "input"));
  const auto& k = node.attr_ints("kernel");
  const auto& s = node.attr_ints("stride");
  const auto& p = node.attr_ints("padding");
  COMPRESS_CHECK(k.size() == 2 && s.size() == 2 && p.size() == 4, kBad,
                 "kernel {} and stride {} need 2 values, padding {} needs 4", ir::shape_to_string(k),
                 ir::shape_to_string(s), ir::shape_to_string(p));
  PoolGeometry g;
  g.n = x.dim(0), g.c = x.dim(1), g.h = x.dim(2), g.w = x.dim(3);
  g.kh = k[0], g.kw = k[1], g.sh = s[0], g.sw = s[1];
  g.pad_top = p[0], g.pad_left = p[1], g.pad_bottom = p[2], g.pad_right = p[3];
  if (node.has_attr("dilation")) {
    const auto& d = node.attr_ints("dilation");
    COMPRESS_CHECK(d.size() == 2, kBad, "dilation {} needs 2 values", ir::shape_to_string(d));
    g.dh = d[0], g.dw = d[1];
  }
  // PyTorch's limit; it also guarantees that no window lies entirely in padding.
  COMPRESS_CHECK(std::max(g.pad_top, g.pad_bottom) <= g.kh / 2 && std::max(g.pad_left, g.pad_right) <= g.kw / 2, kBad,
                 "padding {} must be at most half the kernel {}", ir::shape_to_string(p), ir::shape_to_string(k));
  const bool ceil_mode = node.attr_int("ceil_mode") != 0;
  COMPRESS_ASSIGN_OR_RETURN(g.oh, window_output_size(g.h, g.kh, g.sh, g.pad_top, g.pad_bottom, g.dh, ceil_mode));
  COMPRESS_ASSIGN_OR_RETURN(g.ow, window_output_size(g.w, g.kw, g.sw, g.pad_left, g.pad_right, g.dw, ceil_mode));
  return g;
}

// Runs fn(plane_in, plane_out) over the N*C planes of element type T.
template <typename T = float, typename Fn>
void for_each_plane(const Tensor& x, Tensor& out, int64_t planes, Fn&& fn) {
  const int64_t in_size = planes == 0 ? 0 : x.numel() / planes;
  const int64_t out_size = planes == 0 ? 0 : out.numel() / planes;
  const T* src = x.data<T>();
  T* dst = out.data<T>();
  parallel_for_grain(planes, 8, [&](long begin, long end) {
    for (long p = begin; p < end; ++p) fn(src + p * in_size, dst + p * out_size);
  });
}

// max that lets a NaN win (as PyTorch's pooling does).
inline void max_into(float& m, float v) {
  if (v > m || std::isnan(v)) m = v;
}
inline void max_into(uint8_t& m, uint8_t v) { m = std::max(m, v); }
inline void max_into(int8_t& m, int8_t v) { m = std::max(m, v); }

// Padding never wins: it counts as -inf, i.e. below every stored value.
template <typename T>
T lowest() {
  return std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                              : std::numeric_limits<T>::lowest();
}

// Note [Max pooling on quantized values]
// Dequantizing (q - zp) * scale with scale > 0 is strictly increasing in q,
// so max over a window commutes with it: max_pool2d on the u8/i8 values,
// with the input's quant params on the output, equals the f32 max pool of
// the dequantized input exactly. No rounding, no new params. Per-channel
// params along the channel axis are as exact (each plane has one scale).
template <typename T>
void max_pool_planes(const PoolGeometry& g, const Tensor& in, Tensor& out) {
  for_each_plane<T>(in, out, g.n * g.c, [&](const T* x, T* y) {
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        T m = lowest<T>();
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t hi = oy * g.sh - g.pad_top + i * g.dh;
          if (hi < 0 || hi >= g.h) continue;
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t wi = ox * g.sw - g.pad_left + j * g.dw;
            if (wi >= 0 && wi < g.w) max_into(m, x[hi * g.w + wi]);
          }
        }
        y[oy * g.ow + ox] = m;
      }
    }
  });
}

}  // namespace

Expected<Tensors> max_pool2d(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  COMPRESS_ASSIGN_OR_RETURN(PoolGeometry g, pool_geometry(node, x));
  const Shape shape{g.n, g.c, g.oh, g.ow};
  if (x.dtype() == DType::kU8 || x.dtype() == DType::kI8) {
    std::shared_ptr<const ir::QuantParams> params = x.quant() ? x.quant() : node.input(0)->type().quant;
    COMPRESS_CHECK(params != nullptr && params->storage() == x.dtype() &&
                       (params->granularity() == ir::QuantGranularity::kPerTensor ||
                        (params->granularity() == ir::QuantGranularity::kPerAxis && params->axis() == 1)),
                   kBad, "quantized input {} {} needs per-tensor or per-channel (axis 1) quant params",
                   ir::dtype_name(x.dtype()), ir::shape_to_string(x.shape()));
    COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(x.dtype(), shape));
    out = out.with_quant(std::move(params));
    if (x.dtype() == DType::kU8) {
      max_pool_planes<uint8_t>(g, x, out);
    } else {
      max_pool_planes<int8_t>(g, x, out);
    }
    return Tensors{std::move(out)};
  }
  COMPRESS_RETURN_IF_ERROR(check_f32(x, "input"));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, shape));
  max_pool_planes<float>(g, x, out);
  return Tensors{std::move(out)};
}

Expected<Tensors> avg_pool2d(const ir::Node& node, const Tensors& in) {
  COMPRESS_RETURN_IF_ERROR(check_f32(in[0], "input"));
  COMPRESS_ASSIGN_OR_RETURN(PoolGeometry g, pool_geometry(node, in[0]));
  const bool include_pad = node.attr_int("count_include_pad") != 0;
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, Shape{g.n, g.c, g.oh, g.ow}));
  for_each_plane(in[0], out, g.n * g.c, [&](const float* x, float* y) {
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        // PyTorch: the window is clipped to the padded input (for the
        // count_include_pad divisor), then to the input (for the sum).
        int64_t h0 = oy * g.sh - g.pad_top, w0 = ox * g.sw - g.pad_left;
        int64_t h1 = std::min(h0 + g.kh, g.h + g.pad_bottom), w1 = std::min(w0 + g.kw, g.w + g.pad_right);
        const int64_t padded_count = (h1 - h0) * (w1 - w0);
        h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
        h1 = std::min(h1, g.h), w1 = std::min(w1, g.w);
        double sum = 0.0;
        for (int64_t hi = h0; hi < h1; ++hi) {
          for (int64_t wi = w0; wi < w1; ++wi) sum += x[hi * g.w + wi];
        }
        const int64_t count = include_pad ? padded_count : (h1 - h0) * (w1 - w0);
        y[oy * g.ow + ox] = count > 0 ? static_cast<float>(sum / static_cast<double>(count)) : 0.0f;
      }
    }
  });
  return Tensors{std::move(out)};
}

Expected<Tensors> adaptive_pool2d(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  COMPRESS_RETURN_IF_ERROR(check_f32(x, "input"));
  COMPRESS_RETURN_IF_ERROR(check_rank(x, 4, "input"));
  const auto& o = node.attr_ints("output_size");
  COMPRESS_CHECK(o.size() == 2 && o[0] > 0 && o[1] > 0, kBad, "output_size {} must be two positive values",
                 ir::shape_to_string(o));
  const bool is_max = node.is(ir::OpKind::adaptive_max_pool2d);
  const int64_t h = x.dim(2), w = x.dim(3), oh = o[0], ow = o[1];
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, Shape{x.dim(0), x.dim(1), oh, ow}));
  // PyTorch bins: [floor(i*In/Out), ceil((i+1)*In/Out)).
  auto start = [](int64_t i, int64_t in_size, int64_t out_size) { return (i * in_size) / out_size; };
  auto stop = [](int64_t i, int64_t in_size, int64_t out_size) {
    return ((i + 1) * in_size + out_size - 1) / out_size;
  };
  for_each_plane(x, out, x.dim(0) * x.dim(1), [&](const float* src, float* dst) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      const int64_t h0 = start(oy, h, oh), h1 = stop(oy, h, oh);
      for (int64_t ox = 0; ox < ow; ++ox) {
        const int64_t w0 = start(ox, w, ow), w1 = stop(ox, w, ow);
        if (is_max) {
          float m = -std::numeric_limits<float>::infinity();
          for (int64_t hi = h0; hi < h1; ++hi) {
            for (int64_t wi = w0; wi < w1; ++wi) max_into(m, src[hi * w + wi]);
          }
          dst[oy * ow + ox] = m;
        } else {
          double sum = 0.0;
          for (int64_t hi = h0; hi < h1; ++hi) {
            for (int64_t wi = w0; wi < w1; ++wi) sum += src[hi * w + wi];
          }
          const int64_t count = (h1 - h0) * (w1 - w0);
          dst[oy * ow + ox] = count > 0 ? static_cast<float>(sum / static_cast<double>(count))
                                        : std::numeric_limits<float>::quiet_NaN();
        }
      }
    }
  });
  return Tensors{std::move(out)};
}

}  // namespace compress::runtime::reference
