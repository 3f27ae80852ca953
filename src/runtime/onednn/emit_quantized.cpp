// Emitters for qconv2d / qlinear / qmatmul: int8 primitives that follow the exact quantized contract.
//
// Note [int8 primitives and the quantized contract]
// docs/ops.md fixes every float operation after the exact int32 sum:
//   real = (float)acc * (sx * sw[c]) [+ f32 bias];  q = clamp(nearbyint(real * (1/so)) + zo, qmin, qmax)
// oneDNN 2.6 computes (float)acc * output_scale, then the post-ops in order,
// then adds the destination zero point, saturates and converts. So we give it
//   output scales   m[c] = sx * sw[c]          (the same f32 product, computed here)
//   binary add      the f32 bias, per channel   (after the scale: oneDNN's own bias would come before it)
//   eltwise linear  alpha = 1/so, beta = 0      (one rounding of x * inv: the contract's product)
//   eltwise round   half to even                (so the zero point is added to an integer, exactly)
//   eltwise clip    [qmin - zo, qmax - zo]      (only for a range narrower than the dtype)
//   dst zero point  zo
// and the int32 sum is exact (with VNNI; without it only for weights within
// [-64, 64], Note [int8 and bf16 by CPU ISA] in onednn.h, checked by
// check_no_saturation; the source zero point is an exact int32 compensation
// that treats padding as the zero point). Weight zero points are folded into the weights (wq - zw must fit
// s8). An i32 bias goes to oneDNN's bias, which converts acc and bias to f32
// separately: exact while |acc| and |bias| stay below 2^24.
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <optional>

#include "builder.h"

namespace compress::runtime::onednn {
namespace {

using ir::DType;
using ir::Node;
using ir::Tensor;
using ir::Value;
constexpr StatusCode kUnsup = StatusCode::kUnsupported;

struct ActivationQuant {
  dt type = dt::u8;
  float scale = 1.0f;
  int32_t zero_point = 0;
};

Expected<ActivationQuant> activation_quant(const Value* v, const char* what) {
  const auto& q = v->type().quant;
  COMPRESS_CHECK(q != nullptr && (v->dtype() == DType::kI8 || v->dtype() == DType::kU8) && q->storage() == v->dtype(),
                 kUnsup, "{} '{}' is not an i8/u8 quantized value", what, v->name());
  COMPRESS_CHECK(q->granularity() == ir::QuantGranularity::kPerTensor, kUnsup,
                 "{} '{}' is not quantized per tensor ({})", what, v->name(), q->to_string());
  ActivationQuant a;
  a.type = v->dtype() == DType::kI8 ? dt::s8 : dt::u8;
  a.scale = q->scales()[0];
  a.zero_point = q->zero_points().empty() ? 0 : q->zero_points()[0];
  return a;
}

struct CenteredWeights {
  std::vector<int8_t> values;  // wq - zw[row], row-major like the IR weight
  std::vector<float> scales;   // one per row (output channel)
  bool per_channel = false;
  int peak = 0;                // max |value|
};

// Note [int8 and bf16 by CPU ISA] (onednn.h): refuses a layer whose s8
// operand can reach beyond what this CPU's int8 kernels sum exactly.
Status check_no_saturation(const Value* w, int peak) {
  const OnednnCpuSupport& cpu = onednn_cpu_support();
  const int limit = cpu.int8_weight_limit;
  COMPRESS_CHECK(peak <= limit, kUnsup,
                 "this CPU's ISA ({}) has no VNNI: oneDNN's int8 kernels add u8 x s8 products in saturating 16-bit "
                 "pairs, exact only for s8 values within [-{}, {}], and '{}' reaches {} (7-bit weights run natively)",
                 cpu.isa, limit, limit, w->name(), peak);
  return Status::ok();
}

// Weights with their zero points subtracted, which oneDNN then sees as
// symmetric s8 weights (it has no weight zero points for convolution).
Expected<CenteredWeights> centered_weights(const Value* w) {
  COMPRESS_CHECK(w->is_constant(), kUnsup, "quantized weight '{}' is not a constant", w->name());
  COMPRESS_ASSIGN_OR_RETURN(Tensor t, w->constant().to_dense());
  const ir::QuantParams* q = t.quant() ? t.quant().get() : w->type().quant.get();
  // i4 weights (4-bit QAT) are unpacked to s8 here, once: a 4-bit value is
  // an s8 value, so the int8 kernels compute them exactly.
  const bool packed = t.dtype() == DType::kI4;
  COMPRESS_CHECK(q != nullptr && (t.dtype() == DType::kI8 || t.dtype() == DType::kU8 || packed) &&
                     q->storage() == t.dtype(),
                 kUnsup, "weight '{}' is not an i8/u8/i4 quantized tensor", w->name());
  const bool per_tensor = q->granularity() == ir::QuantGranularity::kPerTensor;
  COMPRESS_CHECK(per_tensor || (q->granularity() == ir::QuantGranularity::kPerAxis && q->axis() == 0), kUnsup,
                 "weight '{}' is quantized {} (oneDNN takes per-tensor or per-output-channel scales)", w->name(),
                 q->to_string());
  const int64_t rows = t.dim(0);
  const int64_t row_size = rows == 0 ? 0 : t.numel() / rows;
  CenteredWeights c;
  c.per_channel = !per_tensor;
  c.values.resize(static_cast<size_t>(t.numel()));
  c.scales.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const size_t pi = per_tensor ? 0 : static_cast<size_t>(r);
    const int32_t zp = q->zero_points().empty() ? 0 : q->zero_points()[pi];
    c.scales[static_cast<size_t>(r)] = q->scales()[pi];
    for (int64_t k = 0; k < row_size; ++k) {
      const int64_t i = r * row_size + k;
      const int64_t qv = packed                        ? ir::get_packed4(static_cast<const uint8_t*>(t.raw_data()), i, true)
                         : t.dtype() == DType::kI8 ? t.data<int8_t>()[i]
                                                   : t.data<uint8_t>()[i];
      const int64_t centered = qv - zp;
      COMPRESS_CHECK(centered >= -128 && centered <= 127, kUnsup,
                     "weight '{}' minus its zero point ({} - {}) does not fit s8, which oneDNN's int8 kernels need",
                     w->name(), qv, zp);
      c.values[static_cast<size_t>(i)] = static_cast<int8_t>(centered);
      c.peak = std::max(c.peak, static_cast<int>(centered < 0 ? -centered : centered));
    }
  }
  return c;
}

struct OutputQuant {
  bool to_float = true;
  dt type = dt::f32;
  float scale = 1.0f;
  float inv_scale = 1.0f;
  int32_t zero_point = 0;
  int64_t qmin = 0, qmax = 0;
};

OutputQuant quantized_output(const ir::QuantParams& params) {
  OutputQuant o;
  o.to_float = false;
  o.type = params.storage() == DType::kI8 ? dt::s8 : dt::u8;
  o.scale = params.scales()[0];
  o.inv_scale = 1.0f / params.scales()[0];
  o.zero_point = params.zero_points().empty() ? 0 : params.zero_points()[0];
  o.qmin = params.qmin();
  o.qmax = params.qmax();
  return o;
}

// The output parameters exactly as the reference picks them (requant_for).
Expected<OutputQuant> output_quant(const Node& n) {
  const std::string& out = n.attr_string("out_dtype");
  if (out == "f32") return OutputQuant{};
  const auto dtype = ir::dtype_from_name(out);
  COMPRESS_CHECK(dtype == DType::kI8 || dtype == DType::kU8, kUnsup, "out_dtype '{}'", out);
  const auto& declared = n.output(0)->type().quant;
  if (declared && declared->granularity() == ir::QuantGranularity::kPerTensor && declared->storage() == *dtype) {
    return quantized_output(*declared);
  }
  COMPRESS_ASSIGN_OR_RETURN(ir::QuantParams p,
                            ir::QuantParams::per_tensor(*dtype, static_cast<float>(n.attr_float("out_scale")),
                                                        static_cast<int32_t>(n.attr_int("out_zero_point"))));
  return quantized_output(p);
}

// Note [Requantizing after f32 post-ops]
// An int8 layer with an f32 output followed by eltwise ops and a quantize
// (qlinear -> gelu -> quantize in a transformer's MLP) is one primitive
// writing u8/i8: the f32 result and its eltwise posts as for an f32 output,
// then the quantize's own arithmetic, nearbyint(y * (1/so)) + zo, with the
// requantization posts of the note at the top (linear 1/so, round, clip,
// dst zero point). The eltwise posts are oneDNN's kernels (as they are for
// the f32 output), so a value that lands on a rounding tie can differ by one
// step from the reference; every other step is the reference's arithmetic.
// prepare.cpp forms such groups only without a sum and with posts that do
// not use eltwise_linear or clip themselves (oneDNN 2.6 takes one of each
// per chain).
Expected<OutputQuant> group_output_quant(const Group& g) {
  if (g.requantize == nullptr) return output_quant(*g.main);
  COMPRESS_CHECK(g.main->attr_string("out_dtype") == "f32", kUnsup, "a quantize after an int8 output");
  return quantized_output(*g.requantize->output(0)->type().quant);
}

// Note [qadd as a sum post-op]
// A qconv2d whose u8/i8 output is read only by a qadd, as that qadd's first
// operand, runs as one convolution whose destination buffer holds the
// qadd's second operand r beforehand. Continuing the chain at the top:
//   eltwise linear  alpha = 1/sc, round     the conv's own requantization,
//   eltwise clip    [qmin_c - zc, qmax_c - zc]   minus its zero point: q_c - zc, exactly
//   binary mul      by sc (one f32)          (float)(q_c - zc) * sc: the qadd's first term
//   sum             scale sr, zero point zr  fma(sr, (float)(r - zr), .): its second term
//   binary mul      by 1/so, round, dst zero point zo: the qadd's requantization
// which is Note [Quantized add] (reference/quantized.cpp) step for step:
// oneDNN's sum post-op converts the old destination to f32, subtracts the
// zero point and adds it with one vfmadd (scale != 1), and a binary mul is
// one rounded product (binary, not a second eltwise linear: see mul_by in
// quant_attr for the oneDNN 2.6 bug). tests/onednn holds it to the
// reference bit for bit. The second operand must have the output's dtype
// (the sum reads the destination's bytes). Only the JIT kernels are used:
// a fused group that gets oneDNN's reference kernel is refused and runs
// unfused (qconv2d, then the native qadd).
struct FusedAdd {
  float conv_scale = 1.0f;  // sc: the qconv2d's own output scale
  ActivationQuant residual;  // r's params
  OutputQuant out;           // the qadd's output
};

// Output scales, zero points and post-ops of a quantized primitive (see the
// note at the top). `channel_dim`: the dst dim of the output channels.
struct QuantAttr {
  dnnl::primitive_attr attr;
  std::vector<std::pair<int, md_t>> bias_post_op;  // (arg, md) of the f32 bias binary post-op
  std::vector<std::pair<int, float>> scalar_muls;  // (arg, value) of binary-mul post-ops by one f32
  std::string detail;
};

Expected<QuantAttr> quant_attr(const Group& g, const ActivationQuant& x, const std::vector<float>& w_scales,
                               bool per_channel, const Value* bias, int channel_dim, int dst_rank,
                               const OutputQuant& conv_out, const ActivationQuant* wzp,
                               const FusedAdd* add = nullptr) {
  QuantAttr qa;
  qa.attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  std::vector<float> m(per_channel ? w_scales.size() : 1);
  for (size_t c = 0; c < m.size(); ++c) m[c] = x.scale * w_scales[c];
  qa.attr.set_output_scales(per_channel ? (1 << channel_dim) : 0, m);
  if (x.zero_point != 0) qa.attr.set_zero_points(DNNL_ARG_SRC, 0, {x.zero_point});
  if (wzp != nullptr && wzp->zero_point != 0) qa.attr.set_zero_points(DNNL_ARG_WEIGHTS, 0, {wzp->zero_point});
  dnnl::post_ops ops;
  if (bias != nullptr && bias->dtype() == DType::kF32) {
    dims_t dims(static_cast<size_t>(dst_rank), 1);
    dims[static_cast<size_t>(channel_dim)] = bias->constant().numel();
    const md_t bias_md = plain_md(ir::Shape(dims.begin(), dims.end()), dt::f32);
    ops.append_binary(dnnl::algorithm::binary_add, bias_md);
    qa.bias_post_op.emplace_back(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, bias_md);
    qa.detail += "f32 bias as a post-op";
  }
  const OutputQuant& out = add != nullptr ? add->out : conv_out;
  if (conv_out.to_float) {
    COMPRESS_RETURN_IF_ERROR(append_posts(g, ops));
  } else {
    if (g.requantize != nullptr) {  // Note [Requantizing after f32 post-ops]
      COMPRESS_RETURN_IF_ERROR(append_posts(g, ops));
    } else {
      COMPRESS_CHECK(g.posts.size() == (add != nullptr ? 1u : 0u), kUnsup, "post-ops after an int8 output");
    }
    const int64_t lo = out.type == dt::s8 ? -128 : 0, hi = out.type == dt::s8 ? 127 : 255;
    const bool narrow = out.qmin > lo || out.qmax < hi;
    // A binary mul by one f32: oneDNN 2.6's brgemm convolutions give every
    // eltwise_linear post-op of a chain the first one's alpha (measured:
    // linear(2), round, linear(0.5) computed 4x), so a chain has at most one
    // eltwise_linear (and one clip).
    auto mul_by = [&](float v) {
      const md_t one = plain_md(ir::Shape(static_cast<size_t>(dst_rank), 1), dt::f32);
      qa.scalar_muls.emplace_back(DNNL_ARG_ATTR_MULTIPLE_POST_OP(ops.len()) | DNNL_ARG_SRC_1, v);
      ops.append_binary(dnnl::algorithm::binary_mul, one);
    };
    if (add != nullptr) {  // Note [qadd as a sum post-op]
      COMPRESS_CHECK(!narrow, kUnsup, "a fused qadd with a narrower output range than its dtype");
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, conv_out.inv_scale, 0.0f);
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_round, 0.0f, 0.0f);
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip_v2, static_cast<float>(conv_out.qmin - conv_out.zero_point),
                         static_cast<float>(conv_out.qmax - conv_out.zero_point));
      mul_by(add->conv_scale);
      ops.append_sum(add->residual.scale, add->residual.zero_point, add->residual.type);
      mul_by(out.inv_scale);
      qa.detail += fmt::format("{}qadd as sum post-op (scale {}, zp {})", qa.detail.empty() ? "" : ", ",
                               add->residual.scale, add->residual.zero_point);
    } else {
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, out.inv_scale, 0.0f);
    }
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_round, 0.0f, 0.0f);
    if (narrow) {
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip_v2, static_cast<float>(out.qmin - out.zero_point),
                         static_cast<float>(out.qmax - out.zero_point));
    }
    if (out.zero_point != 0) qa.attr.set_zero_points(DNNL_ARG_DST, 0, {out.zero_point});
    qa.detail += fmt::format("{}requantize to {} (1/scale {}, zp {})", qa.detail.empty() ? "" : ", ",
                             out.type == dt::s8 ? "s8" : "u8", out.inv_scale, out.zero_point);
  }
  qa.attr.set_post_ops(ops);
  return qa;
}

Status check_bias(const Value* bias, int64_t channels) {
  if (bias == nullptr) return Status::ok();
  COMPRESS_CHECK(bias->is_constant() && (bias->dtype() == DType::kF32 || bias->dtype() == DType::kI32) &&
                     bias->constant().numel() == channels && !bias->constant().is_sparse(),
                 kUnsup, "bias '{}' must be a constant f32 or i32 vector of {} channels", bias->name(), channels);
  return Status::ok();
}

// Fixed arguments for a bias: the f32 binary post-op operand or oneDNN's s32 bias.
Status add_bias(Builder& b, const Value* bias, const QuantAttr& qa, const md_t& s32_bias_md,
                std::vector<std::pair<int, dnnl::memory>>* fixed) {
  if (bias == nullptr) return Status::ok();
  if (bias->dtype() == DType::kF32) {
    const auto& [arg, md] = qa.bias_post_op.front();
    COMPRESS_ASSIGN_OR_RETURN(dnnl::memory m, b.weight(bias, "bias post-op", md, bias->constant().raw_data(), md));
    fixed->emplace_back(arg, m);
  } else {
    COMPRESS_ASSIGN_OR_RETURN(dnnl::memory m,
                              b.weight(bias, "s32 bias", s32_bias_md, bias->constant().raw_data(), s32_bias_md));
    fixed->emplace_back(DNNL_ARG_BIAS, m);
  }
  return Status::ok();
}

}  // namespace

Status emit_qconv(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  const Value* w = n.input(1);
  const Value* bias = n.num_inputs() > 2 ? n.input(2) : nullptr;
  COMPRESS_ASSIGN_OR_RETURN(ActivationQuant xq, activation_quant(x, "input"));
  COMPRESS_ASSIGN_OR_RETURN(CenteredWeights wq, centered_weights(w));
  COMPRESS_RETURN_IF_ERROR(check_no_saturation(w, wq.peak));
  const OnednnCpuSupport& cpu = onednn_cpu_support();
  COMPRESS_CHECK(cpu.int8_vnni || xq.type == dt::u8, kUnsup,
                 "this CPU's ISA ({}) has no VNNI: for an s8 source oneDNN's int8 convolutions halve the weights, "
                 "which rounds odd ones (u8 sources run natively)",
                 cpu.isa);
  COMPRESS_ASSIGN_OR_RETURN(OutputQuant oq, group_output_quant(g));
  const ir::Shape& xs = x->shape();
  const ir::Shape& ws = w->shape();
  const ir::Shape& ys = n.output(0)->shape();
  COMPRESS_CHECK(xs.size() == 4 && ws.size() == 4 && ys.size() == 4, kUnsup, "qconv2d needs rank-4 operands");
  COMPRESS_RETURN_IF_ERROR(check_bias(bias, ws[0]));
  const int64_t groups = n.attr_int("groups");
  const auto& stride = n.attr_ints("stride");
  const auto& pad = n.attr_ints("padding");
  const auto& dil = n.attr_ints("dilation");
  const dims_t wdims = groups > 1 ? dims_t{groups, ws[0] / groups, ws[1], ws[2], ws[3]} : to_dims(ws);
  // Note [qadd as a sum post-op]; with an f32 output, eltwise posts and an
  // f32 sum as for conv2d (append_posts).
  std::optional<FusedAdd> add;
  if (!g.posts.empty() && !oq.to_float && g.requantize == nullptr) {
    const Node& q = *g.posts.front();
    COMPRESS_CHECK(g.posts.size() == 1 && q.is(ir::OpKind::qadd) && g.residual != nullptr, kUnsup,
                   "qconv2d with post-ops {}", post_summary(g));
    const Value* residual = g.residual;
    add.emplace();
    add->conv_scale = oq.scale;
    COMPRESS_ASSIGN_OR_RETURN(add->residual, activation_quant(residual, "qadd input 1"));
    COMPRESS_ASSIGN_OR_RETURN(add->out, output_quant(q));
    COMPRESS_CHECK(!add->out.to_float && add->out.type == add->residual.type && residual->shape() == ys, kUnsup,
                   "qadd fused as a sum needs an i8/u8 output of its second operand's dtype and shape");
  }
  const OutputQuant& final_out = add ? add->out : oq;
  COMPRESS_ASSIGN_OR_RETURN(QuantAttr qa, quant_attr(g, xq, wq.scales, wq.per_channel, bias, 1, 4, oq, nullptr,
                                                     add ? &*add : nullptr));
  const md_t s32_bias = plain_md({ws[0]}, dt::s32);
  const md_t b_md = bias != nullptr && bias->dtype() == DType::kI32 ? s32_bias : md_t();
  dnnl::convolution_forward::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("int8 convolution", [&] {
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                      md_t(to_dims(xs), xq.type, tag::any), md_t(wdims, dt::s8, tag::any), b_md,
                                      md_t(to_dims(ys), final_out.type, tag::any), {stride[0], stride[1]},
                                      {dil[0] - 1, dil[1] - 1}, {pad[0], pad[1]}, {pad[2], pad[3]});
    pd = dnnl::convolution_forward::primitive_desc(d, qa.attr, cpu_engine());
  }));
  const std::string impl = pd.impl_info_str();
  COMPRESS_CHECK(!add || impl.rfind("ref", 0) != 0, kUnsup,
                 "oneDNN has only its reference kernel ({}) for this int8 convolution with a fused qadd", impl);

  b.consume(g);
  COMPRESS_ASSIGN_OR_RETURN(int src, b.get(x, pd.src_desc()));
  COMPRESS_ASSIGN_OR_RETURN(dnnl::memory wmem,
                            b.weight(w, "qconv centered s8", plain_md(ir::Shape(wdims.begin(), wdims.end()), dt::s8),
                                     wq.values.data(), pd.weights_desc()));
  std::vector<std::pair<int, dnnl::memory>> fixed = {{DNNL_ARG_WEIGHTS, wmem}};
  COMPRESS_RETURN_IF_ERROR(add_bias(b, bias, qa, s32_bias, &fixed));
  for (const auto& [arg, value] : qa.scalar_muls) {
    const float v = value;
    COMPRESS_ASSIGN_OR_RETURN(dnnl::memory m,
                              b.constant_memory(g.output(), fmt::format("scalar post-op {} = {}", arg, v),
                                                plain_md({1, 1, 1, 1}, dt::f32),
                                                [v](void* p) { *static_cast<float*>(p) = v; }));
    fixed.emplace_back(arg, m);
  }
  // The sum (f32 or qadd) reads its second operand from the destination.
  std::string where;
  COMPRESS_ASSIGN_OR_RETURN(const int dst, group_destination(b, g, pd.dst_desc(), {src}, &where));
  OnednnStep info;
  info.kind = "convolution";
  info.nodes = g.node_names();
  info.detail = fmt::format("int8 {} -> {}, weights {}; {}{}", describe_md(pd.src_desc()), describe_md(pd.dst_desc()),
                            describe_md(pd.weights_desc()), qa.detail, where);
  const std::string posts_text = post_summary(g);
  if (!posts_text.empty()) info.detail += "; " + posts_text;
  b.add_primitive(dnnl::convolution_forward(pd), pd, {{DNNL_ARG_SRC, src, {}}, {DNNL_ARG_DST, dst, {}}}, fixed, info);
  return Status::ok();
}

Status emit_qlinear(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  const Value* w = n.input(1);
  const Value* bias = n.num_inputs() > 2 ? n.input(2) : nullptr;
  COMPRESS_ASSIGN_OR_RETURN(ActivationQuant xq, activation_quant(x, "input"));
  COMPRESS_ASSIGN_OR_RETURN(CenteredWeights wq, centered_weights(w));
  COMPRESS_RETURN_IF_ERROR(check_no_saturation(w, wq.peak));
  COMPRESS_ASSIGN_OR_RETURN(OutputQuant oq, group_output_quant(g));
  const ir::Shape& xs = x->shape();
  COMPRESS_CHECK(!xs.empty() && w->shape().size() == 2, kUnsup, "qlinear needs a rank >= 1 input and a 2-D weight");
  const int64_t k = xs.back(), out = w->shape()[0];
  const int64_t m = k == 0 ? 0 : ir::numel(xs) / k;
  COMPRESS_CHECK(m > 0 && k > 0 && out > 0, kUnsup, "qlinear with an empty dimension");
  COMPRESS_RETURN_IF_ERROR(check_bias(bias, out));
  // matmul rather than inner product: oneDNN 2.6's int8 matmul takes a
  // source zero point, its inner product does not.
  COMPRESS_ASSIGN_OR_RETURN(QuantAttr qa, quant_attr(g, xq, wq.scales, wq.per_channel, bias, 1, 2, oq, nullptr));
  const md_t src_md = plain_md({m, k}, xq.type);
  const md_t dst_md = plain_md({m, out}, oq.type);
  const md_t s32_bias = plain_md({1, out}, dt::s32);
  const md_t b_md = bias != nullptr && bias->dtype() == DType::kI32 ? s32_bias : md_t();
  dnnl::matmul::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("int8 matmul", [&] {
    dnnl::matmul::desc d(src_md, md_t({k, out}, dt::s8, tag::any), b_md, dst_md);
    pd = dnnl::matmul::primitive_desc(d, qa.attr, cpu_engine());
  }));

  b.consume(g);
  COMPRESS_ASSIGN_OR_RETURN(int src, b.get_plain(x, x->dtype()));
  // The IR weight is [out, in]; oneDNN's is [in, out]: the same bytes read with swapped strides.
  const md_t w_source({k, out}, dt::s8, dims_t{1, k});
  COMPRESS_ASSIGN_OR_RETURN(dnnl::memory wmem,
                            b.weight(w, "qlinear centered s8", w_source, wq.values.data(), pd.weights_desc()));
  std::vector<std::pair<int, dnnl::memory>> fixed = {{DNNL_ARG_WEIGHTS, wmem}};
  COMPRESS_RETURN_IF_ERROR(add_bias(b, bias, qa, s32_bias, &fixed));
  std::string where;  // f32 output: a fused residual add is a sum post-op
  COMPRESS_ASSIGN_OR_RETURN(const int dst,
                            group_destination(b, g, plain_md(g.output()->shape(), oq.type), {src}, &where));
  OnednnStep info;
  info.kind = "matmul";
  info.nodes = g.node_names();
  info.detail = fmt::format("int8 {} x weights {}; {}{}", describe_md(src_md), describe_md(pd.weights_desc()),
                            qa.detail, where);
  const std::string posts_text = post_summary(g);
  if (!posts_text.empty()) info.detail += "; " + posts_text;
  b.add_primitive(dnnl::matmul(pd), pd, {{DNNL_ARG_SRC, src, src_md}, {DNNL_ARG_DST, dst, dst_md}}, fixed, info);
  return Status::ok();
}

Status emit_qmatmul(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* a = n.input(0);
  const Value* w = n.input(1);
  COMPRESS_ASSIGN_OR_RETURN(ActivationQuant aq, activation_quant(a, "input 0"));
  COMPRESS_ASSIGN_OR_RETURN(ActivationQuant wq, activation_quant(w, "input 1"));
  COMPRESS_CHECK(wq.type == dt::s8, kUnsup, "qmatmul with a u8 second operand (oneDNN's int8 matmul takes s8 weights)");
  const ir::QuantParams& wparams = *w->type().quant;
  COMPRESS_RETURN_IF_ERROR(check_no_saturation(
      w, static_cast<int>(std::max(std::abs(wparams.qmin()), std::abs(wparams.qmax())))));
  COMPRESS_ASSIGN_OR_RETURN(OutputQuant oq, group_output_quant(g));
  ir::Shape as = a->shape(), ws = w->shape();
  const ir::Shape& ys = n.output(0)->shape();
  COMPRESS_CHECK(as.size() >= 2 && ws.size() >= 2, kUnsup, "qmatmul with a 1-D operand");
  const size_t rank = ys.size();
  while (as.size() < rank) as.insert(as.begin(), 1);
  while (ws.size() < rank) ws.insert(ws.begin(), 1);
  COMPRESS_ASSIGN_OR_RETURN(QuantAttr qa, quant_attr(g, aq, {wq.scale}, false, nullptr, static_cast<int>(rank) - 1,
                                                     static_cast<int>(rank), oq, &wq));
  const md_t a_md = plain_md(as, aq.type);
  const md_t w_md = plain_md(ws, dt::s8);
  const md_t dst_md = plain_md(ys, oq.type);
  dnnl::matmul::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("int8 matmul", [&] {
    dnnl::matmul::desc d(a_md, w_md, dst_md);
    pd = dnnl::matmul::primitive_desc(d, qa.attr, cpu_engine());
  }));

  b.consume(g);
  COMPRESS_ASSIGN_OR_RETURN(int src, b.get_plain(a, a->dtype()));
  COMPRESS_ASSIGN_OR_RETURN(int wid, b.get_plain(w, w->dtype()));
  std::string where;
  COMPRESS_ASSIGN_OR_RETURN(const int dst, group_destination(b, g, dst_md, {src, wid}, &where));
  OnednnStep info;
  info.kind = "matmul";
  info.nodes = g.node_names();
  info.detail = fmt::format("int8 {} x {}; {}{}", describe_md(a_md), describe_md(w_md), qa.detail, where);
  b.add_primitive(dnnl::matmul(pd), pd,
                  {{DNNL_ARG_SRC, src, a_md}, {DNNL_ARG_WEIGHTS, wid, w_md}, {DNNL_ARG_DST, dst, {}}}, {}, info);
  return Status::ok();
}

}  // namespace compress::runtime::onednn
