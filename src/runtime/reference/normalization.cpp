// batch_norm (inference), layer_norm, rms_norm, softmax and reduce_mean, with statistics in double.
#include <cmath>
#include <limits>
#include <utility>

#include "kernels.h"

namespace compress::runtime::reference {
namespace {

constexpr StatusCode kBad = StatusCode::kInvalidArgument;
constexpr int64_t kGrain = 1 << 12;

// x viewed as [outer, dim, inner] around `axis`.
struct AxisView {
  int64_t outer = 1, dim = 1, inner = 1;
};
AxisView view_around(const Shape& shape, int64_t axis) {
  AxisView v;
  for (int64_t d = 0; d < axis; ++d) v.outer *= shape[d];
  v.dim = shape[axis];
  for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) v.inner *= shape[d];
  return v;
}

}  // namespace

Expected<Tensors> batch_norm(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  COMPRESS_RETURN_IF_ERROR(check_f32(x, "input"));
  COMPRESS_CHECK(x.rank() >= 2, kBad, "input must have rank >= 2 [N, C, ...], got {}", ir::shape_to_string(x.shape()));
  const int64_t channels = x.dim(1);
  static const char* const kNames[] = {"", "weight", "bias", "running_mean", "running_var"};
  for (size_t i = 1; i < 5; ++i) {
    COMPRESS_RETURN_IF_ERROR(check_f32(in[i], kNames[i]));
    COMPRESS_CHECK(in[i].shape() == Shape{channels}, kBad, "{} has shape {}, input {} needs [{}]", kNames[i],
                   ir::shape_to_string(in[i].shape()), ir::shape_to_string(x.shape()), channels);
  }
  const double eps = node.attr_float("eps");
  std::vector<double> scale(static_cast<size_t>(channels)), shift(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    const double inv_std = 1.0 / std::sqrt(static_cast<double>(in[4].data<float>()[c]) + eps);
    scale[c] = static_cast<double>(in[1].data<float>()[c]) * inv_std;
    shift[c] = static_cast<double>(in[2].data<float>()[c]) - static_cast<double>(in[3].data<float>()[c]) * scale[c];
  }
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, x.shape()));
  const AxisView v = view_around(x.shape(), 1);
  const float* src = x.data<float>();
  float* dst = out.data<float>();
  parallel_for_grain(v.outer * v.dim, kGrain / std::max<int64_t>(1, v.inner) + 1, [&](long begin, long end) {
    for (long row = begin; row < end; ++row) {
      const int64_t c = row % v.dim;
      for (int64_t i = 0; i < v.inner; ++i) {
        const int64_t at = row * v.inner + i;
        dst[at] = static_cast<float>(static_cast<double>(src[at]) * scale[c] + shift[c]);
      }
    }
  });
  return Tensors{std::move(out)};
}

namespace {

// The [rows, size] view of a norm over the last normalized_ndim dims, with
// its optional weight and bias checked against the normalized shape.
struct TrailingRows {
  int64_t rows = 0, size = 0;
  const float* weight = nullptr;
  const float* bias = nullptr;
};

Expected<TrailingRows> trailing_rows(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  COMPRESS_RETURN_IF_ERROR(check_f32(x, "input"));
  const int64_t k = node.attr_int("normalized_ndim");
  COMPRESS_CHECK(k >= 1 && k <= x.rank(), kBad, "normalized_ndim {} out of range for input {}", k,
                 ir::shape_to_string(x.shape()));
  const Shape normalized(x.shape().end() - k, x.shape().end());
  for (size_t i = 1; i < in.size(); ++i) {
    COMPRESS_RETURN_IF_ERROR(check_f32(in[i], i == 1 ? "weight" : "bias"));
    COMPRESS_CHECK(in[i].shape() == normalized, kBad, "{} has shape {}, input {} needs {}", i == 1 ? "weight" : "bias",
                   ir::shape_to_string(in[i].shape()), ir::shape_to_string(x.shape()), ir::shape_to_string(normalized));
  }
  TrailingRows r;
  r.size = ir::numel(normalized);
  r.rows = r.size == 0 ? 0 : x.numel() / r.size;
  r.weight = in.size() > 1 ? in[1].data<float>() : nullptr;
  r.bias = in.size() > 2 ? in[2].data<float>() : nullptr;
  return r;
}

// Normalizes each row of `x` as y = (x - center) * inv_scale(row) * weight + bias,
// with the row statistics from `stats` (in double).
template <typename RowStats>
Expected<Tensors> normalize_rows(const Tensor& x, const TrailingRows& r, RowStats stats) {
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, x.shape()));
  const float* src = x.data<float>();
  float* dst = out.data<float>();
  parallel_for_grain(r.rows, kGrain / std::max<int64_t>(1, r.size) + 1, [&](long begin, long end) {
    for (long row = begin; row < end; ++row) {
      const float* xr = src + row * r.size;
      const auto [center, inv_scale] = stats(xr, r.size);
      for (int64_t i = 0; i < r.size; ++i) {
        double y = (xr[i] - center) * inv_scale;
        if (r.weight) y *= r.weight[i];
        if (r.bias) y += r.bias[i];
        dst[row * r.size + i] = static_cast<float>(y);
      }
    }
  });
  return Tensors{std::move(out)};
}

}  // namespace

Expected<Tensors> layer_norm(const ir::Node& node, const Tensors& in) {
  COMPRESS_ASSIGN_OR_RETURN(TrailingRows r, trailing_rows(node, in));
  const double eps = node.attr_float("eps");
  return normalize_rows(in[0], r, [eps](const float* xr, int64_t size) {
    double mean = 0.0;
    for (int64_t i = 0; i < size; ++i) mean += xr[i];
    mean /= static_cast<double>(size);
    double var = 0.0;  // biased (divide by N), two-pass for accuracy
    for (int64_t i = 0; i < size; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= static_cast<double>(size);
    return std::pair<double, double>{mean, 1.0 / std::sqrt(var + eps)};
  });
}

Expected<Tensors> rms_norm(const ir::Node& node, const Tensors& in) {
  COMPRESS_ASSIGN_OR_RETURN(TrailingRows r, trailing_rows(node, in));
  const double eps = node.attr_float("eps");
  return normalize_rows(in[0], r, [eps](const float* xr, int64_t size) {
    double mean_square = 0.0;
    for (int64_t i = 0; i < size; ++i) mean_square += static_cast<double>(xr[i]) * xr[i];
    mean_square /= static_cast<double>(size);
    return std::pair<double, double>{0.0, 1.0 / std::sqrt(mean_square + eps)};
  });
}

Expected<Tensors> softmax(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  COMPRESS_RETURN_IF_ERROR(check_f32(x, "input"));
  COMPRESS_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(node.attr_int("axis"), std::max<int64_t>(1, x.rank())));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, x.shape()));
  const AxisView v = x.rank() == 0 ? AxisView{} : view_around(x.shape(), axis);
  const float* src = x.data<float>();
  float* dst = out.data<float>();
  parallel_for_grain(v.outer * v.inner, kGrain / std::max<int64_t>(1, v.dim) + 1, [&](long begin, long end) {
    std::vector<double> e(static_cast<size_t>(v.dim));
    for (long t = begin; t < end; ++t) {
      const int64_t o = t / v.inner, i = t % v.inner;
      const int64_t base = o * v.dim * v.inner + i;
      // Subtracting the max keeps exp() in range. A NaN anywhere, or a row
      // that is all -inf, gives NaN (as PyTorch).
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t d = 0; d < v.dim; ++d) m = std::max(m, static_cast<double>(src[base + d * v.inner]));
      double sum = 0.0;
      for (int64_t d = 0; d < v.dim; ++d) {
        e[d] = std::exp(static_cast<double>(src[base + d * v.inner]) - m);
        sum += e[d];
      }
      for (int64_t d = 0; d < v.dim; ++d) dst[base + d * v.inner] = static_cast<float>(e[d] / sum);
    }
  });
  return Tensors{std::move(out)};
}

Expected<Tensors> reduce_mean(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  COMPRESS_RETURN_IF_ERROR(check_f32(x, "input"));
  const bool keepdim = node.attr_int("keepdim") != 0;
  std::vector<bool> reduce(static_cast<size_t>(x.rank()), false);
  for (int64_t a : node.attr_ints("axes")) {
    COMPRESS_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(a, x.rank()));
    reduce[axis] = true;
  }
  Shape out_shape;
  Shape kept_shape(static_cast<size_t>(x.rank()), 1);  // input rank, reduced dims = 1
  int64_t count = 1;
  for (int64_t d = 0; d < x.rank(); ++d) {
    if (reduce[d]) {
      count *= x.dim(d);
      if (keepdim) out_shape.push_back(1);
    } else {
      out_shape.push_back(x.dim(d));
      kept_shape[d] = x.dim(d);
    }
  }
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, out_shape));
  // Each input element adds into its output element; sums in input order, in double.
  std::vector<double> sums(static_cast<size_t>(out.numel()), 0.0);
  const std::vector<int64_t> target = broadcast_batch_offsets(x.shape(), kept_shape);
  const float* src = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) sums[target[i]] += src[i];
  float* dst = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) {
    dst[i] = static_cast<float>(count == 0 ? std::numeric_limits<double>::quiet_NaN()
                                           : sums[i] / static_cast<double>(count));
  }
  return Tensors{std::move(out)};
}

}  // namespace compress::runtime::reference
