// Elementwise kernels (activations, clamp, broadcasting binary ops), one table row each; NaN propagates.
#include <algorithm>
#include <cmath>

#include "kernels.h"

namespace compress::runtime::reference {
namespace {

constexpr StatusCode kBad = StatusCode::kInvalidArgument;
constexpr int64_t kGrain = 1 << 15;
constexpr double kSqrtHalf = 0.70710678118654752440;
constexpr double kSqrt2OverPi = 0.79788456080286535588;

// min/max that return NaN when x is NaN (std::min/max depend on argument order).
inline double clamp_nan(double x, double lo, double hi) {
  if (std::isnan(x)) return x;
  return x < lo ? lo : (x > hi ? hi : x);
}

template <typename Fn>
Expected<Tensors> map_unary(const Tensor& x, Fn fn) {
  COMPRESS_RETURN_IF_ERROR(check_f32(x, "input"));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, x.shape()));
  const float* src = x.data<float>();
  float* dst = out.data<float>();
  // Evaluated in double and rounded once: the result is (nearly always) the
  // correctly rounded f32 value of the exact function.
  parallel_for_grain(x.numel(), kGrain, [&](long begin, long end) {
    for (long i = begin; i < end; ++i) dst[i] = static_cast<float>(fn(static_cast<double>(src[i])));
  });
  return Tensors{std::move(out)};
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

namespace {

Expected<Tensors> gelu(const ir::Node& node, const Tensors& in) {
  const std::string& approx = node.attr_string("approximate");
  if (approx == "none") return map_unary(in[0], [](double x) { return 0.5 * x * (1.0 + std::erf(x * kSqrtHalf)); });
  COMPRESS_CHECK(approx == "tanh", kBad, "gelu: approximate must be 'none' or 'tanh', got '{}'", approx);
  return map_unary(in[0],
                   [](double x) { return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x))); });
}

Expected<Tensors> clamp(const ir::Node& node, const Tensors& in) {
  const double lo = node.attr_float("min"), hi = node.attr_float("max");
  COMPRESS_CHECK(!(lo > hi), kBad, "clamp: min {} > max {}", lo, hi);
  // PyTorch compares in the tensor's dtype: bounds are rounded to f32 first.
  const double lo_f = static_cast<float>(lo), hi_f = static_cast<float>(hi);
  return map_unary(in[0], [lo_f, hi_f](double x) { return clamp_nan(x, lo_f, hi_f); });
}

}  // namespace

namespace {

// f32 +,-,*,/ are correctly rounded, so plain float arithmetic is exact here.
template <typename Op>
Expected<Tensors> broadcast_binary(const Tensors& in, Op apply) {
  COMPRESS_RETURN_IF_ERROR(check_f32(in[0], "input 0"));
  COMPRESS_RETURN_IF_ERROR(check_f32(in[1], "input 1"));
  COMPRESS_ASSIGN_OR_RETURN(Shape out_shape, broadcast_shapes(in[0].shape(), in[1].shape()));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, out_shape));
  const float* a = in[0].data<float>();
  const float* b = in[1].data<float>();
  float* y = out.data<float>();
  if (in[0].shape() == in[1].shape()) {
    parallel_for_grain(out.numel(), kGrain, [&](long begin, long end) {
      for (long i = begin; i < end; ++i) y[i] = apply(a[i], b[i]);
    });
    return Tensors{std::move(out)};
  }
  // Broadcast: rows of the last output dim; each operand either walks its last
  // dim or repeats its single element. (Different shapes imply rank >= 1.)
  const size_t rank = out_shape.size();
  auto padded = [rank](const Shape& s) {
    Shape p(rank - s.size(), 1);
    p.insert(p.end(), s.begin(), s.end());
    return p;
  };
  const Shape pa = padded(in[0].shape()), pb = padded(in[1].shape());
  const Shape outer(out_shape.begin(), out_shape.end() - 1);
  const std::vector<int64_t> oa = broadcast_batch_offsets(outer, Shape(pa.begin(), pa.end() - 1));
  const std::vector<int64_t> ob = broadcast_batch_offsets(outer, Shape(pb.begin(), pb.end() - 1));
  const int64_t inner = out_shape.back(), la = pa.back(), lb = pb.back();
  const int64_t sa = la == 1 ? 0 : 1, sb = lb == 1 ? 0 : 1;
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(inner, 1));
  parallel_for_grain(static_cast<int64_t>(oa.size()), grain, [&](long begin, long end) {
    for (long r = begin; r < end; ++r) {
      const float* ar = a + oa[r] * la;
      const float* br = b + ob[r] * lb;
      float* yr = y + r * inner;
      for (int64_t i = 0; i < inner; ++i) yr[i] = apply(ar[i * sa], br[i * sb]);
    }
  });
  return Tensors{std::move(out)};
}

}  // namespace

namespace {

using ir::OpKind;
using Row = std::pair<OpKind, KernelFn>;

// One row per elementwise op: adding an activation is one line here.
const Row kElementwiseKernels[] = {
    {OpKind::relu, [](const ir::Node&, const Tensors& in) { return map_unary(in[0], [](double x) { return x < 0.0 ? 0.0 : x; }); }},
    {OpKind::relu6, [](const ir::Node&, const Tensors& in) { return map_unary(in[0], [](double x) { return clamp_nan(x, 0.0, 6.0); }); }},
    {OpKind::sigmoid, [](const ir::Node&, const Tensors& in) { return map_unary(in[0], sigmoid); }},
    {OpKind::silu, [](const ir::Node&, const Tensors& in) { return map_unary(in[0], [](double x) { return x * sigmoid(x); }); }},
    {OpKind::tanh, [](const ir::Node&, const Tensors& in) { return map_unary(in[0], [](double x) { return std::tanh(x); }); }},
    {OpKind::hardsigmoid,
     [](const ir::Node&, const Tensors& in) { return map_unary(in[0], [](double x) { return clamp_nan(x + 3.0, 0.0, 6.0) / 6.0; }); }},
    {OpKind::hardswish,
     [](const ir::Node&, const Tensors& in) { return map_unary(in[0], [](double x) { return x * clamp_nan(x + 3.0, 0.0, 6.0) / 6.0; }); }},
    {OpKind::gelu, gelu},
    {OpKind::clamp, clamp},
    {OpKind::add, [](const ir::Node&, const Tensors& in) { return broadcast_binary(in, [](float a, float b) { return a + b; }); }},
    {OpKind::sub, [](const ir::Node&, const Tensors& in) { return broadcast_binary(in, [](float a, float b) { return a - b; }); }},
    {OpKind::mul, [](const ir::Node&, const Tensors& in) { return broadcast_binary(in, [](float a, float b) { return a * b; }); }},
    {OpKind::div, [](const ir::Node&, const Tensors& in) { return broadcast_binary(in, [](float a, float b) { return a / b; }); }},
};

}  // namespace

KernelFn elementwise_kernel(ir::OpKind kind) {
  for (const Row& row : kElementwiseKernels) {
    if (row.first == kind) return row.second;
  }
  return nullptr;
}

}  // namespace compress::runtime::reference
