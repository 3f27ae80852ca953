// quantize / dequantize / fake_quant and the exact integer qconv2d, qlinear, qmatmul.
//
// Every formula here is the contract in compress/runtime/quant_arith.h and
// docs/ops.md ("Quantized arithmetic"); faster backends are tested for
// bit-exact agreement with it, so change both or neither.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <vector>

#include "compress/runtime/quant_arith.h"
#include "conv_geometry.h"

namespace compress::runtime::reference {
namespace {

constexpr StatusCode kBad = StatusCode::kInvalidArgument;

// Stores q (already within the dtype's range) as element i.
void store_integer(Tensor& t, int64_t i, int64_t q) {
  void* data = t.raw_data();
  switch (t.dtype()) {
    case DType::kI8:
      static_cast<int8_t*>(data)[i] = static_cast<int8_t>(q);
      break;
    case DType::kU8:
      static_cast<uint8_t*>(data)[i] = static_cast<uint8_t>(q);
      break;
    case DType::kI4:
    case DType::kU4:
      ir::set_packed4(static_cast<uint8_t*>(data), i, static_cast<int>(q));
      break;
    case DType::kI32:
      static_cast<int32_t*>(data)[i] = static_cast<int32_t>(q);
      break;
    case DType::kI64:
      static_cast<int64_t*>(data)[i] = q;
      break;
    default:
      COMPRESS_INTERNAL_ASSERT(false, "store_integer on {}", ir::dtype_name(t.dtype()));
  }
}

// A quantized operand with its values centered: value[i] = q[i] - zero_point.
struct CenteredOperand {
  std::vector<int32_t> values;
  std::vector<float> scales;  // one (per tensor) or one per row (axis 0)
  const ir::QuantParams* params = nullptr;
};

Expected<CenteredOperand> centered(const ir::Node& node, const Tensors& in, size_t i, const char* what,
                                   bool allow_per_row) {
  const Tensor& t = in[i];
  const ir::QuantParams* params = input_quant(node, in, i);
  // A per-row operand is a layer's weight, which may be packed i4 (4-bit QAT).
  const bool i4_weight = allow_per_row && t.dtype() == DType::kI4;
  COMPRESS_CHECK(params != nullptr && (t.dtype() == DType::kI8 || t.dtype() == DType::kU8 || i4_weight), kBad,
                 "{} must be a quantized i8/u8 tensor, got {} {}{}", what, ir::dtype_name(t.dtype()),
                 ir::shape_to_string(t.shape()), params ? "" : " without quant params");
  COMPRESS_CHECK(params->storage() == t.dtype(), kBad, "{} is {} but its quant params say {}", what,
                 ir::dtype_name(t.dtype()), ir::dtype_name(params->storage()));
  const bool per_tensor = params->granularity() == ir::QuantGranularity::kPerTensor;
  const bool per_row = params->granularity() == ir::QuantGranularity::kPerAxis && params->axis() == 0;
  COMPRESS_CHECK(per_tensor || (allow_per_row && per_row), kBad, "{} must be quantized per tensor{}, got {}", what,
                 allow_per_row ? " or per output channel (axis 0)" : "", params->to_string());
  COMPRESS_RETURN_IF_ERROR(params->check_shape(t.shape()).with_context(what));
  CenteredOperand op;
  op.params = params;
  op.scales = params->scales();
  op.values.resize(static_cast<size_t>(t.numel()));
  const int64_t row_size = per_tensor || t.rank() == 0 || t.dim(0) == 0 ? t.numel() : t.numel() / t.dim(0);
  for (int64_t k = 0; k < t.numel(); ++k) {
    const int64_t zp = params->zero_points()[per_tensor ? 0 : static_cast<size_t>(k / row_size)];
    op.values[k] = static_cast<int32_t>(integer_element(t, k) - zp);
  }
  return op;
}

// How the int32 accumulator becomes the output (the requantization half of the contract).
struct Requant {
  bool to_float = true;
  DType dtype = DType::kF32;
  float inv_scale = 1.0f;
  int64_t zero_point = 0, qmin = 0, qmax = 0;
  std::shared_ptr<const ir::QuantParams> params;
  const Tensor* bias = nullptr;  // f32 or i32, [channels]
};

Expected<Requant> requant_for(const ir::Node& node, const Tensor* bias, int64_t channels) {
  Requant r;
  if (bias != nullptr) {
    COMPRESS_CHECK(bias->dtype() == DType::kF32 || bias->dtype() == DType::kI32, kBad,
                   "bias must be f32 or i32 (accumulator scale), got {}", ir::dtype_name(bias->dtype()));
    COMPRESS_CHECK(bias->shape() == Shape{channels}, kBad, "bias shape {} must be [{}]",
                   ir::shape_to_string(bias->shape()), channels);
    r.bias = bias;
  }
  const std::string& out = node.attr_string("out_dtype");
  if (out == "f32") return r;
  const auto dtype = ir::dtype_from_name(out);
  COMPRESS_CHECK(dtype == DType::kI8 || dtype == DType::kU8, kBad, "out_dtype must be f32, i8 or u8, got '{}'", out);
  const auto& declared = node.output(0)->type().quant;
  if (declared && declared->granularity() == ir::QuantGranularity::kPerTensor && declared->storage() == *dtype) {
    r.params = declared;
  } else {
    COMPRESS_ASSIGN_OR_RETURN(ir::QuantParams p,
                              ir::QuantParams::per_tensor(*dtype, static_cast<float>(node.attr_float("out_scale")),
                                                          static_cast<int32_t>(node.attr_int("out_zero_point"))));
    r.params = std::make_shared<const ir::QuantParams>(std::move(p));
  }
  r.to_float = false;
  r.dtype = *dtype;
  r.inv_scale = quant_inv_scale(r.params->scales()[0]);
  r.zero_point = r.params->zero_points()[0];
  r.qmin = r.params->qmin();
  r.qmax = r.params->qmax();
  return r;
}

Expected<Tensor> requant_output(const Requant& r, Shape shape) {
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(r.dtype, std::move(shape)));
  if (!r.to_float) out = out.with_quant(r.params);
  return out;
}

// Writes output element `at` of channel c from its exact accumulator.
Status emit(const Requant& r, Tensor& out, int64_t at, int64_t acc, int64_t c, float x_scale, float w_scale) {
  if (r.bias != nullptr && r.bias->dtype() == DType::kI32) acc += r.bias->data<int32_t>()[c];
  // Note [Accumulator range]: the int8 backends accumulate in int32. Wrapped
  // partial sums still give the exact total when the total fits, so only the
  // final value (after an i32 bias) is checked.
  COMPRESS_CHECK(acc >= std::numeric_limits<int32_t>::min() && acc <= std::numeric_limits<int32_t>::max(), kBad,
                 "int32 accumulator overflow at output element {} (channel {}): the exact sum is {}; int8 backends "
                 "would wrap. Use smaller input ranges or split the reduction",
                 at, c, acc);
  float real = accumulator_to_real(static_cast<int32_t>(acc), x_scale, w_scale);
  if (r.bias != nullptr && r.bias->dtype() == DType::kF32) real = real + r.bias->data<float>()[c];
  if (r.to_float) {
    out.data<float>()[at] = real;
  } else {
    store_integer(out, at, quantize_value(real, r.inv_scale, r.zero_point, r.qmin, r.qmax));
  }
  return Status::ok();
}

// c[m, n] = sum_k a[m, k] * b[k, n], exact in int64 (|a|,|b| <= 255 each).
void int_gemm(const int32_t* a, const int32_t* b, int64_t m, int64_t k, int64_t n, int64_t* c) {
  std::fill(c, c + m * n, 0);
  // When no partial sum can leave int32 (k * max|a| * max|b| < 2^31, true
  // for every 8-bit layer with k < 33000), the same sums in int32 lanes:
  // exact, and they vectorize where int64 multiplies do not (AVX2 has no
  // 64-bit multiply), which matters when onednn leaves int8 layers to these
  // kernels (Note [int8 and bf16 by CPU ISA] in runtime/onednn.h).
  int64_t max_a = 0, max_b = 0;
  for (int64_t i = 0; i < m * k; ++i) max_a = std::max<int64_t>(max_a, std::abs(static_cast<int64_t>(a[i])));
  for (int64_t i = 0; i < k * n; ++i) max_b = std::max<int64_t>(max_b, std::abs(static_cast<int64_t>(b[i])));
  if (max_a * max_b * k < (int64_t{1} << 31)) {
    std::vector<int32_t> row(static_cast<size_t>(n));
    for (int64_t i = 0; i < m; ++i) {
      std::fill(row.begin(), row.end(), 0);
      for (int64_t kk = 0; kk < k; ++kk) {
        const int32_t aik = a[i * k + kk];
        if (aik == 0) continue;
        const int32_t* bk = b + kk * n;
        for (int64_t j = 0; j < n; ++j) row[static_cast<size_t>(j)] += aik * bk[j];
      }
      for (int64_t j = 0; j < n; ++j) c[i * n + j] = row[static_cast<size_t>(j)];
    }
    return;
  }
  for (int64_t i = 0; i < m; ++i) {
    int64_t* ci = c + i * n;
    for (int64_t kk = 0; kk < k; ++kk) {
      const int64_t aik = a[i * k + kk];
      if (aik == 0) continue;
      const int32_t* bk = b + kk * n;
      for (int64_t j = 0; j < n; ++j) ci[j] += aik * bk[j];
    }
  }
}

float weight_scale(const CenteredOperand& w, int64_t channel) {
  return w.scales.size() == 1 ? w.scales[0] : w.scales[static_cast<size_t>(channel)];
}

// Collects the first error of a parallel region (workers cannot return it).
class FirstError {
 public:
  void record(Status s) {
    if (s.is_ok()) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (status_.is_ok()) status_ = std::move(s);
  }
  Status take() { return std::move(status_); }

 private:
  std::mutex mu_;
  Status status_;
};

}  // namespace

Expected<Tensors> qconv2d(const ir::Node& node, const Tensors& in) {
  const Tensor* bias = in.size() > 2 ? &in[2] : nullptr;
  COMPRESS_ASSIGN_OR_RETURN(CenteredOperand x, centered(node, in, 0, "input", false));
  COMPRESS_ASSIGN_OR_RETURN(CenteredOperand w, centered(node, in, 1, "weight", true));
  COMPRESS_ASSIGN_OR_RETURN(ConvGeometry g, conv_geometry(node, in[0], in[1], nullptr));
  COMPRESS_ASSIGN_OR_RETURN(Requant r, requant_for(node, bias, g.o));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, requant_output(r, Shape{g.n, g.o, g.oh, g.ow}));
  const int64_t k = g.patch(), p = g.pixels(), og = g.o_per_group();
  const float sx = x.scales[0];
  FirstError error;
  parallel_for(static_cast<long>(g.n * g.groups), [&](long begin, long end) {
    std::vector<int32_t> col(static_cast<size_t>(k * p));
    std::vector<int64_t> acc(static_cast<size_t>(og * p));
    for (long unit = begin; unit < end; ++unit) {
      const int64_t n = unit / g.groups, group = unit % g.groups;
      const int32_t* image = x.values.data() + n * g.c * g.h * g.w;
      // Centered values pad with 0: padding is the real value 0, i.e. the zero point.
      im2col<int32_t>(
          g, group, 0, [&](int64_t ci, int64_t hi, int64_t wi) { return image[(ci * g.h + hi) * g.w + wi]; },
          col.data());
      int_gemm(w.values.data() + group * og * k, col.data(), og, k, p, acc.data());
      for (int64_t o = 0; o < og; ++o) {
        const int64_t oc = group * og + o;
        const float sw = weight_scale(w, oc);
        for (int64_t i = 0; i < p; ++i) {
          const int64_t at = (n * g.o + oc) * p + i;
          error.record(emit(r, out, at, acc[o * p + i], oc, sx, sw));
        }
      }
    }
  });
  COMPRESS_RETURN_IF_ERROR(error.take());
  return Tensors{std::move(out)};
}

Expected<Tensors> qlinear(const ir::Node& node, const Tensors& in) {
  const Tensor* bias = in.size() > 2 ? &in[2] : nullptr;
  COMPRESS_RETURN_IF_ERROR(check_rank(in[1], 2, "weight"));
  COMPRESS_CHECK(in[0].rank() >= 1 && in[0].dim(-1) == in[1].dim(1), kBad,
                 "input {} does not match weight {} (expects {} input features)", ir::shape_to_string(in[0].shape()),
                 ir::shape_to_string(in[1].shape()), in[1].dim(1));
  COMPRESS_ASSIGN_OR_RETURN(CenteredOperand x, centered(node, in, 0, "input", false));
  COMPRESS_ASSIGN_OR_RETURN(CenteredOperand w, centered(node, in, 1, "weight", true));
  const int64_t out_features = in[1].dim(0), in_features = in[1].dim(1);
  COMPRESS_ASSIGN_OR_RETURN(Requant r, requant_for(node, bias, out_features));
  Shape out_shape = in[0].shape();
  out_shape.back() = out_features;
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, requant_output(r, out_shape));
  const int64_t rows = out_features == 0 ? 0 : out.numel() / out_features;
  const float sx = x.scales[0];
  FirstError error;
  // int32 lanes when no sum can overflow them, as in int_gemm.
  int64_t max_x = 0, max_w = 0;
  for (int32_t v : x.values) max_x = std::max<int64_t>(max_x, std::abs(static_cast<int64_t>(v)));
  for (int32_t v : w.values) max_w = std::max<int64_t>(max_w, std::abs(static_cast<int64_t>(v)));
  const bool narrow = max_x * max_w * in_features < (int64_t{1} << 31);
  parallel_for_grain(rows, 4, [&](long begin, long end) {
    for (long row = begin; row < end; ++row) {
      const int32_t* xr = x.values.data() + row * in_features;
      for (int64_t o = 0; o < out_features; ++o) {
        const int32_t* wr = w.values.data() + o * in_features;
        int64_t acc = 0;
        if (narrow) {
          int32_t acc32 = 0;
          for (int64_t i = 0; i < in_features; ++i) acc32 += xr[i] * wr[i];
          acc = acc32;
        } else {
          for (int64_t i = 0; i < in_features; ++i) acc += static_cast<int64_t>(xr[i]) * wr[i];
        }
        error.record(emit(r, out, row * out_features + o, acc, o, sx, weight_scale(w, o)));
      }
    }
  });
  COMPRESS_RETURN_IF_ERROR(error.take());
  return Tensors{std::move(out)};
}

Expected<Tensors> qmatmul(const ir::Node& node, const Tensors& in) {
  COMPRESS_ASSIGN_OR_RETURN(MatmulGeometry g, matmul_geometry(in[0].shape(), in[1].shape()));
  COMPRESS_ASSIGN_OR_RETURN(CenteredOperand a, centered(node, in, 0, "input 0", false));
  COMPRESS_ASSIGN_OR_RETURN(CenteredOperand b, centered(node, in, 1, "input 1", false));
  COMPRESS_ASSIGN_OR_RETURN(Requant r, requant_for(node, nullptr, 0));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, requant_output(r, g.out_shape));
  const float sa = a.scales[0], sb = b.scales[0];
  FirstError error;
  parallel_for_grain(static_cast<int64_t>(g.a_offsets.size()), 2, [&](long begin, long end) {
    std::vector<int64_t> acc(static_cast<size_t>(g.m * g.n));
    for (long t = begin; t < end; ++t) {
      int_gemm(a.values.data() + g.a_offsets[t] * g.m * g.k, b.values.data() + g.b_offsets[t] * g.k * g.n, g.m, g.k,
               g.n, acc.data());
      for (int64_t i = 0; i < g.m * g.n; ++i) error.record(emit(r, out, t * g.m * g.n + i, acc[i], 0, sa, sb));
    }
  });
  COMPRESS_RETURN_IF_ERROR(error.take());
  return Tensors{std::move(out)};
}

// Note [Quantized add]
// qadd(a, b) = requantize(fma(sb, (float)(b - zb), (float)(a - za) * sa)):
// a's real value is the contract's dequantize (one f32 rounding), b's is
// multiplied and added in ONE rounding (a fused multiply-add, std::fmaf).
// This is the order in which oneDNN's sum post-op applies a residual
// (vfmadd of scale * (dst - zp) into the value computed so far), so a qadd
// fused into the qconv2d that produces `a` is bit-exact with this kernel.
// The operands are not interchangeable in the last bit.
Expected<Tensors> qadd(const ir::Node& node, const Tensors& in) {
  COMPRESS_CHECK(in[0].shape() == in[1].shape(), kBad, "operand shapes {} and {} differ",
                 ir::shape_to_string(in[0].shape()), ir::shape_to_string(in[1].shape()));
  COMPRESS_ASSIGN_OR_RETURN(CenteredOperand a, centered(node, in, 0, "input 0", false));
  COMPRESS_ASSIGN_OR_RETURN(CenteredOperand b, centered(node, in, 1, "input 1", false));
  COMPRESS_ASSIGN_OR_RETURN(Requant r, requant_for(node, nullptr, 0));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, requant_output(r, in[0].shape()));
  const float sa = a.scales[0], sb = b.scales[0];
  for (int64_t i = 0; i < out.numel(); ++i) {
    const float real = std::fmaf(sb, static_cast<float>(b.values[i]), static_cast<float>(a.values[i]) * sa);
    if (r.to_float) {
      out.data<float>()[i] = real;
    } else {
      store_integer(out, i, quantize_value(real, r.inv_scale, r.zero_point, r.qmin, r.qmax));
    }
  }
  return Tensors{std::move(out)};
}

Expected<Tensors> quantize(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  COMPRESS_RETURN_IF_ERROR(check_f32(x, "input"));
  COMPRESS_ASSIGN_OR_RETURN(ir::QuantParams params, quant_params_from_attrs(node, x.shape()));
  auto shared = std::make_shared<const ir::QuantParams>(std::move(params));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(shared->storage(), x.shape()));
  out = out.with_quant(shared);
  std::vector<float> inv(shared->scales().size());
  for (size_t i = 0; i < inv.size(); ++i) inv[i] = quant_inv_scale(shared->scales()[i]);
  const float* src = x.data<float>();
  const bool per_tensor = shared->granularity() == ir::QuantGranularity::kPerTensor;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const size_t pi = per_tensor ? 0 : static_cast<size_t>(shared->param_index(x.shape(), i));
    store_integer(out, i, quantize_value(src[i], inv[pi], shared->zero_points()[pi], shared->qmin(), shared->qmax()));
  }
  return Tensors{std::move(out)};
}

Expected<Tensors> dequantize(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  const ir::QuantParams* params = input_quant(node, in, 0);
  COMPRESS_CHECK(params != nullptr, kBad, "input {} {} has no quant params", ir::dtype_name(x.dtype()),
                 ir::shape_to_string(x.shape()));
  COMPRESS_CHECK(ir::is_quantizable_storage(x.dtype()) && params->storage() == x.dtype(), kBad,
                 "input is {} but its quant params are {}", ir::dtype_name(x.dtype()), params->to_string());
  COMPRESS_RETURN_IF_ERROR(params->check_shape(x.shape()));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, x.shape()));
  float* dst = out.data<float>();
  const bool per_tensor = params->granularity() == ir::QuantGranularity::kPerTensor;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const size_t pi = per_tensor ? 0 : static_cast<size_t>(params->param_index(x.shape(), i));
    dst[i] = dequantize_value(integer_element(x, i), params->scales()[pi], params->zero_points()[pi]);
  }
  return Tensors{std::move(out)};
}

Expected<Tensors> fake_quant(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  COMPRESS_RETURN_IF_ERROR(check_f32(x, "input"));
  COMPRESS_ASSIGN_OR_RETURN(ir::QuantParams params, quant_params_from_attrs(node, x.shape()));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(DType::kF32, x.shape()));
  const float* src = x.data<float>();
  float* dst = out.data<float>();
  const bool per_tensor = params.granularity() == ir::QuantGranularity::kPerTensor;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (std::isnan(src[i])) {  // the one departure from dequantize(quantize(x)): NaN stays NaN
      dst[i] = src[i];
      continue;
    }
    const size_t pi = per_tensor ? 0 : static_cast<size_t>(params.param_index(x.shape(), i));
    const float scale = params.scales()[pi];
    const int64_t zp = params.zero_points()[pi];
    dst[i] =
        dequantize_value(quantize_value(src[i], quant_inv_scale(scale), zp, params.qmin(), params.qmax()), scale, zp);
  }
  return Tensors{std::move(out)};
}

}  // namespace compress::runtime::reference
