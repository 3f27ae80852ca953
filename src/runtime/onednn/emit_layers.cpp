// Emitters for eltwise, binary, pooling, normalization, softmax and reduction primitives.
#include <algorithm>
#include <cstring>

#include "builder.h"

namespace compress::runtime::onednn {
namespace {

using ir::DType;
using ir::Node;
using ir::Value;
constexpr StatusCode kUnsup = StatusCode::kUnsupported;

dnnl::primitive_attr scratch_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

Status check_float(const Value* v, const Node& n) {
  COMPRESS_CHECK(v->dtype() == DType::kF32, kUnsup, "{} on {} data", n.op(), ir::dtype_name(v->dtype()));
  return Status::ok();
}

// In place over the source when nothing reads it afterwards.
int destination(Builder& b, const Value* out, int src, const md_t& md, const std::vector<int>& other_reads) {
  if (b.stored(src).md == md && b.can_overwrite(src, other_reads)) return b.share(out, src);
  return b.new_stored(out, md);
}

int64_t normalize_axis(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

// A constant f32 vector as a plain oneDNN memory (shared through the weight cache).
Expected<dnnl::memory> vector_memory(Builder& b, const Value* v, int64_t n, const char* what) {
  COMPRESS_CHECK(
      v->is_constant() && v->dtype() == DType::kF32 && v->constant().numel() == n && !v->constant().is_sparse(), kUnsup,
      "{} '{}' is not a constant f32 vector of {} elements", what, v->name(), n);
  const md_t md = plain_md({n}, dt::f32);
  return b.weight(v, "vector", md, v->constant().raw_data(), md);
}

// A norm over the last normalized_ndim dims (layer_norm, rms_norm) as a
// normalization over the last dim of the [rows, width] view.
struct TrailingRows {
  int64_t rows = 0, width = 0;
};

Expected<TrailingRows> trailing_rows(const Node& n) {
  const ir::Shape& xs = n.input(0)->shape();
  const int64_t k = n.attr_int("normalized_ndim");
  COMPRESS_CHECK(k >= 1 && k <= static_cast<int64_t>(xs.size()), kUnsup, "{} over {} dims of rank {}", n.op(), k,
                 xs.size());
  TrailingRows r;
  r.width = 1;
  for (size_t d = xs.size() - static_cast<size_t>(k); d < xs.size(); ++d) r.width *= xs[d];
  r.rows = r.width == 0 ? 0 : ir::numel(xs) / r.width;
  COMPRESS_CHECK(r.rows > 0 && r.width > 0, kUnsup, "{} on empty data", n.op());
  return r;
}

// The inference layer normalization over the last dim of `md`.
Expected<dnnl::layer_normalization_forward::primitive_desc> layer_norm_pd(const md_t& md, double eps,
                                                                        dnnl::normalization_flags flags,
                                                                        const char* what) {
  dnnl::layer_normalization_forward::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl(what, [&] {
    dnnl::layer_normalization_forward::desc d(dnnl::prop_kind::forward_inference, md, static_cast<float>(eps), flags);
    pd = dnnl::layer_normalization_forward::primitive_desc(d, scratch_attr(), cpu_engine());
  }));
  return pd;
}

}  // namespace

Status emit_eltwise(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  COMPRESS_RETURN_IF_ERROR(check_float(x, n));
  COMPRESS_ASSIGN_OR_RETURN(std::vector<EltwiseSpec> specs, eltwise_spec(n));
  const int src0 = b.natural(x);
  const md_t md = b.stored(src0).md;
  std::vector<dnnl::eltwise_forward::primitive_desc> pds;
  for (const EltwiseSpec& s : specs) {
    COMPRESS_RETURN_IF_ERROR(try_dnnl("eltwise", [&] {
      dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, s.alg, md, s.alpha, s.beta);
      pds.emplace_back(d, scratch_attr(), cpu_engine());
    }));
  }
  b.consume(g);
  int src = src0;
  const int dst = destination(b, g.output(), src, md, {});
  for (auto& pd : pds) {
    OnednnStep info;
    info.kind = "eltwise";
    info.nodes = g.node_names();
    info.detail = fmt::format("{} {}{}", n.op(), describe_md(md), src == dst ? " in place" : "");
    b.add_primitive(dnnl::eltwise_forward(pd), pd, {{DNNL_ARG_SRC, src, {}}, {DNNL_ARG_DST, dst, {}}}, {}, info);
    src = dst;
  }
  return Status::ok();
}

Status emit_binary(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* a = n.input(0);
  const Value* c = n.input(1);
  COMPRESS_RETURN_IF_ERROR(check_float(a, n));
  COMPRESS_RETURN_IF_ERROR(check_float(c, n));
  const ir::Shape& ys = n.output(0)->shape();
  const ir::OpKind op = n.kind();
  if (a->shape() != ys) {
    COMPRESS_CHECK(c->shape() == ys && (op == ir::OpKind::add || op == ir::OpKind::mul), kUnsup,
                   "{} whose first operand broadcasts (oneDNN broadcasts only the second)", n.op());
    std::swap(a, c);
  }
  const dnnl::algorithm alg = op == ir::OpKind::add   ? dnnl::algorithm::binary_add
                              : op == ir::OpKind::sub ? dnnl::algorithm::binary_sub
                              : op == ir::OpKind::mul ? dnnl::algorithm::binary_mul
                                                      : dnnl::algorithm::binary_div;
  const md_t natural0 = b.stored(b.natural(a)).md;
  const bool same_shape = c->shape() == ys;
  ir::Shape cs = c->shape();
  while (cs.size() < ys.size()) cs.insert(cs.begin(), 1);
  // The broadcast operand (a channel vector, a scalar) takes src0's layout
  // family: oneDNN's jit binary kernels broadcast only between like layouts.
  const bool constant1 = c->is_constant() && !c->constant().is_sparse();
  std::optional<dt> type1;
  if (!same_shape) {
    const ir::DType t1 = constant1 ? c->constant().dtype() : b.stored(b.natural(c)).dtype;
    type1 = to_dnnl(t1);
    COMPRESS_CHECK(type1.has_value(), kUnsup, "{} operand of type {}", n.op(), ir::dtype_name(t1));
  }
  dnnl::primitive_attr attr = scratch_attr();
  dnnl::post_ops ops;
  COMPRESS_RETURN_IF_ERROR(append_posts(g, ops));
  attr.set_post_ops(ops);
  md_t md0 = natural0, md1;
  auto make_pd = [&](const md_t& m0) {
    md1 = same_shape ? m0 : like(m0, to_dims(cs), *type1);
    return dnnl::binary::primitive_desc(dnnl::binary::desc(alg, m0, md1, m0), attr, cpu_engine());
  };
  dnnl::binary::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("binary", [&] { pd = make_pd(md0); }));
  if (impl_name(pd).find("ref") != std::string::npos && ys.size() >= 3 && ys.size() <= 5) {
    // oneDNN 2.6's jit binary covers plain, channels-last and 16-channel
    // blocks; an nChw8c input (grouped convs) would take the reference loop.
    const tag channels_last = ys.size() == 3 ? tag::acb : ys.size() == 4 ? tag::acdb : tag::acdeb;
    const md_t nhwc(to_dims(ys), natural0.data_type(), channels_last);
    try {
      auto faster = make_pd(nhwc);
      if (impl_name(faster).find("ref") == std::string::npos) {
        pd = faster;
        md0 = nhwc;
      }
    } catch (const dnnl::error&) {
    }
    if (md0 != nhwc) md1 = same_shape ? md0 : like(md0, to_dims(cs), *type1);
  }

  b.consume(g);
  COMPRESS_ASSIGN_OR_RETURN(const int src0, b.get(a, md0));
  std::vector<StepArg> args = {{DNNL_ARG_SRC_0, src0, {}}};
  std::vector<std::pair<int, dnnl::memory>> fixed;
  std::vector<int> reads = {src0};
  if (!same_shape && constant1) {
    // A constant operand is put in that layout once, at compile time.
    COMPRESS_ASSIGN_OR_RETURN(
        dnnl::memory m, b.weight(c, "binary operand", plain_md(cs, md1.data_type()), c->constant().raw_data(), md1));
    fixed.emplace_back(DNNL_ARG_SRC_1, m);
  } else {
    COMPRESS_ASSIGN_OR_RETURN(int src1, b.get(c, md1));
    args.push_back({DNNL_ARG_SRC_1, src1, {}});
    reads.push_back(src1);
  }
  const int dst = destination(b, g.output(), src0, md0, reads);
  args.push_back({DNNL_ARG_DST, dst, {}});
  OnednnStep info;
  info.kind = "binary";
  info.nodes = g.node_names();
  info.detail = fmt::format("{} {} with {}{}", n.op(), describe_md(md0), describe_md(md1), src0 == dst ? " in place" : "");
  const std::string posts_text = post_summary(g);
  if (!posts_text.empty()) info.detail += "; " + posts_text;
  b.add_primitive(dnnl::binary(pd), pd, args, fixed, info);
  return Status::ok();
}

Status emit_pool(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  // u8/i8 max pooling keeps the input's params (Note [Max pooling on
  // quantized values], reference/pooling.cpp); oneDNN pools them as integers.
  const bool quantized = n.is(ir::OpKind::max_pool2d) && (x->dtype() == DType::kU8 || x->dtype() == DType::kI8);
  if (!quantized) COMPRESS_RETURN_IF_ERROR(check_float(x, n));
  const ir::Shape& xs = x->shape();
  const ir::Shape& ys = n.output(0)->shape();
  COMPRESS_CHECK(xs.size() == 4 && ys.size() == 4, kUnsup, "{} needs rank-4 data", n.op());
  const ir::OpKind op = n.kind();
  dims_t kernel(2), stride(2), pad_l(2, 0), pad_r(2, 0), dilation(2, 0);
  dnnl::algorithm alg = dnnl::algorithm::pooling_max;
  if (op == ir::OpKind::adaptive_avg_pool2d || op == ir::OpKind::adaptive_max_pool2d) {
    // Bins are uniform windows exactly when the output size divides the input size.
    for (int d = 0; d < 2; ++d) {
      const int64_t in = xs[2 + d], out = ys[2 + d];
      COMPRESS_CHECK(out > 0 && in % out == 0, kUnsup,
                     "adaptive pooling from {} to {} (uneven bins; oneDNN pools with one window size)", in, out);
      kernel[d] = stride[d] = in / out;
    }
    alg = op == ir::OpKind::adaptive_avg_pool2d ? dnnl::algorithm::pooling_avg_include_padding : dnnl::algorithm::pooling_max;
  } else {
    const auto& k = n.attr_ints("kernel");
    const auto& s = n.attr_ints("stride");
    const auto& p = n.attr_ints("padding");
    const bool is_max = op == ir::OpKind::max_pool2d;
    const bool include_pad = !is_max && n.attr_int("count_include_pad") != 0;
    for (int d = 0; d < 2; ++d) {
      kernel[d] = k[d];
      stride[d] = s[d];
      const int64_t dil = is_max ? n.attr_ints("dilation")[d] : 1;
      dilation[d] = dil - 1;
      pad_l[d] = p[d];
      // oneDNN derives the output size from the padding, so the right
      // padding is what makes its floor formula give the IR's (ceil mode) size.
      const int64_t needed = (ys[2 + d] - 1) * s[d] + dil * (k[d] - 1) + 1 - xs[2 + d] - p[d];
      pad_r[d] = std::max(p[2 + d], needed);
      COMPRESS_CHECK(
          !(include_pad && pad_r[d] > p[2 + d]), kUnsup,
          "avg_pool2d in ceil mode with count_include_pad (PyTorch's divisor stops at the declared padding)");
    }
    if (!is_max) {
      alg = include_pad ? dnnl::algorithm::pooling_avg_include_padding : dnnl::algorithm::pooling_avg_exclude_padding;
    }
  }
  const int src = b.natural(x);
  const md_t src_md = b.stored(src).md;
  dnnl::pooling_v2_forward::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("pooling", [&] {
    dnnl::pooling_v2_forward::desc d(dnnl::prop_kind::forward_inference, alg, src_md,
                                     md_t(to_dims(ys), src_md.data_type(), tag::any), stride, kernel, dilation, pad_l,
                                     pad_r);
    pd = dnnl::pooling_v2_forward::primitive_desc(d, scratch_attr(), cpu_engine());
  }));
  b.consume(g);
  const int dst = b.new_stored(g.output(), pd.dst_desc());
  OnednnStep info;
  info.kind = "pooling";
  info.nodes = g.node_names();
  info.detail = fmt::format("{} {} -> {}", n.op(), describe_md(src_md), describe_md(pd.dst_desc()));
  b.add_primitive(dnnl::pooling_v2_forward(pd), pd, {{DNNL_ARG_SRC, src, {}}, {DNNL_ARG_DST, dst, {}}}, {}, info);
  return Status::ok();
}

Status emit_batch_norm(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  COMPRESS_RETURN_IF_ERROR(check_float(x, n));
  COMPRESS_CHECK(x->shape().size() >= 2, kUnsup, "batch_norm on rank < 2 data");
  const int64_t c = x->shape()[1];
  const int src = b.natural(x);
  const md_t md = b.stored(src).md;
  auto flags = dnnl::normalization_flags::use_global_stats | dnnl::normalization_flags::use_scale |
               dnnl::normalization_flags::use_shift;
  if (!g.posts.empty()) flags |= dnnl::normalization_flags::fuse_norm_relu;
  for (size_t i = 1; i < 5; ++i) {
    const Value* p = n.input(i);
    COMPRESS_CHECK(p->is_constant() && p->dtype() == DType::kF32 && p->constant().numel() == c, kUnsup,
                   "batch_norm parameter '{}' is not a constant f32 vector of {} channels", p->name(), c);
  }
  dnnl::batch_normalization_forward::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("batch normalization", [&] {
    dnnl::batch_normalization_forward::desc d(dnnl::prop_kind::forward_inference, md,
                                              static_cast<float>(n.attr_float("eps")), flags);
    pd = dnnl::batch_normalization_forward::primitive_desc(d, scratch_attr(), cpu_engine());
  }));
  b.consume(g);
  std::vector<std::pair<int, dnnl::memory>> fixed;
  const int args[] = {DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE};
  for (size_t i = 0; i < 4; ++i) {
    COMPRESS_ASSIGN_OR_RETURN(dnnl::memory m, vector_memory(b, n.input(i + 1), c, "batch_norm parameter"));
    fixed.emplace_back(args[i], m);
  }
  const int dst = destination(b, g.output(), src, md, {});
  OnednnStep info;
  info.kind = "batch_normalization";
  info.nodes = g.node_names();
  info.detail = fmt::format("{}{}", describe_md(md), g.posts.empty() ? "" : "; fused relu");
  b.add_primitive(dnnl::batch_normalization_forward(pd), pd, {{DNNL_ARG_SRC, src, {}}, {DNNL_ARG_DST, dst, {}}}, fixed,
                  info);
  return Status::ok();
}

Status emit_layer_norm(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  COMPRESS_RETURN_IF_ERROR(check_float(x, n));
  COMPRESS_ASSIGN_OR_RETURN(const TrailingRows view, trailing_rows(n));
  const int64_t rows = view.rows, width = view.width;
  const Value* weight = n.num_inputs() > 1 ? n.input(1) : nullptr;
  const Value* bias = n.num_inputs() > 2 ? n.input(2) : nullptr;
  COMPRESS_ASSIGN_OR_RETURN(int src, b.get_plain_any(x));
  // Normalizing the last k dims is normalizing the last dim of the [rows, width] view.
  const md_t md = plain_md({rows, width}, to_dnnl(b.stored(src).dtype).value());
  dnnl::normalization_flags flags = dnnl::normalization_flags::none;
  if (weight != nullptr) flags |= dnnl::normalization_flags::use_scale;
  if (bias != nullptr) flags |= dnnl::normalization_flags::use_shift;
  COMPRESS_ASSIGN_OR_RETURN(const auto pd, layer_norm_pd(md, n.attr_float("eps"), flags, "layer normalization"));
  std::vector<std::pair<int, dnnl::memory>> fixed;
  if (weight != nullptr) {
    COMPRESS_ASSIGN_OR_RETURN(dnnl::memory m, vector_memory(b, weight, width, "layer_norm weight"));
    fixed.emplace_back(DNNL_ARG_SCALE, m);
  }
  if (bias != nullptr) {
    COMPRESS_ASSIGN_OR_RETURN(dnnl::memory m, vector_memory(b, bias, width, "layer_norm bias"));
    fixed.emplace_back(DNNL_ARG_SHIFT, m);
  }
  b.consume(g);
  const md_t out_md = plain_md(g.output()->shape(), md.data_type());
  const int dst = destination(b, g.output(), src, out_md, {});
  std::vector<StepArg> args = {{DNNL_ARG_SRC, src, md}, {DNNL_ARG_DST, dst, md}};
  // Without global statistics oneDNN writes the mean and variance it computed.
  if (pd.mean_desc().get_size() > 0) args.push_back({DNNL_ARG_MEAN, b.new_temp(pd.mean_desc()), {}});
  if (pd.variance_desc().get_size() > 0) {
    args.push_back({DNNL_ARG_VARIANCE, b.new_temp(pd.variance_desc()), {}});
  }
  OnednnStep info;
  info.kind = "layer_normalization";
  info.nodes = g.node_names();
  info.detail = describe_md(md);
  b.add_primitive(dnnl::layer_normalization_forward(pd), pd, args, fixed, info);
  return Status::ok();
}

// Note [RMS norm on oneDNN 2.6]
// oneDNN 2.6 has no RMS normalization (its rms_norm flag came in 3.x), but it
// is two primitives it has: a reduction writes mean(x^2) per row (the L2
// power sum, scaled by 1/width in an eltwise_linear post-op), and a layer
// normalization takes that as its variance with a zero mean
// (use_global_stats), computing x / sqrt(mean(x^2) + eps) * weight.
Status emit_rms_norm(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  COMPRESS_RETURN_IF_ERROR(check_float(x, n));
  COMPRESS_ASSIGN_OR_RETURN(const TrailingRows view, trailing_rows(n));
  const int64_t rows = view.rows, width = view.width;
  const Value* weight = n.num_inputs() > 1 ? n.input(1) : nullptr;
  COMPRESS_ASSIGN_OR_RETURN(int src, b.get_plain_any(x));
  const md_t md = plain_md({rows, width}, to_dnnl(b.stored(src).dtype).value());
  const md_t row_stats_md = plain_md({rows, 1}, dt::f32);
  dnnl::reduction::primitive_desc mean_square_pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("rms_norm mean of squares", [&] {
    dnnl::post_ops scale;
    scale.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, 1.0f / static_cast<float>(width), 0.0f);
    dnnl::primitive_attr attr = scratch_attr();
    attr.set_post_ops(scale);
    dnnl::reduction::desc d(dnnl::algorithm::reduction_norm_lp_power_p_sum, md, row_stats_md, 2.0f, 0.0f);
    mean_square_pd = dnnl::reduction::primitive_desc(d, attr, cpu_engine());
  }));
  dnnl::normalization_flags flags = dnnl::normalization_flags::use_global_stats;
  if (weight != nullptr) flags |= dnnl::normalization_flags::use_scale;
  COMPRESS_ASSIGN_OR_RETURN(const auto norm_pd, layer_norm_pd(md, n.attr_float("eps"), flags, "rms_norm normalization"));
  std::vector<std::pair<int, dnnl::memory>> fixed;
  COMPRESS_ASSIGN_OR_RETURN(dnnl::memory zero_mean,
                            b.constant_memory(n.output(), fmt::format("rms_norm zero mean of {} rows", rows),
                                              norm_pd.mean_desc(), [&](void* p) {
                                                std::memset(p, 0, norm_pd.mean_desc().get_size());
                                              }));
  fixed.emplace_back(DNNL_ARG_MEAN, zero_mean);
  if (weight != nullptr) {
    COMPRESS_ASSIGN_OR_RETURN(dnnl::memory m, vector_memory(b, weight, width, "rms_norm weight"));
    fixed.emplace_back(DNNL_ARG_SCALE, m);
  }
  b.consume(g);
  const int mean_square = b.new_temp(norm_pd.variance_desc());
  OnednnStep reduce_info;
  reduce_info.kind = "reduction";
  reduce_info.nodes = g.node_names();
  reduce_info.detail = fmt::format("mean of squares over {}", describe_md(md));
  b.add_primitive(dnnl::reduction(mean_square_pd), mean_square_pd,
                  {{DNNL_ARG_SRC, src, md}, {DNNL_ARG_DST, mean_square, row_stats_md}}, {}, reduce_info);
  const md_t out_md = plain_md(g.output()->shape(), md.data_type());
  const int dst = destination(b, g.output(), src, out_md, {mean_square});
  OnednnStep info;
  info.kind = "layer_normalization";
  info.nodes = g.node_names();
  info.detail = fmt::format("{}; rms (zero mean, global statistics)", describe_md(md));
  b.add_primitive(dnnl::layer_normalization_forward(norm_pd), norm_pd,
                  {{DNNL_ARG_SRC, src, md}, {DNNL_ARG_DST, dst, md}, {DNNL_ARG_VARIANCE, mean_square, {}}}, fixed, info);
  return Status::ok();
}

Status emit_softmax(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  COMPRESS_RETURN_IF_ERROR(check_float(x, n));
  COMPRESS_CHECK(!x->shape().empty(), kUnsup, "softmax of a scalar");
  const int axis = static_cast<int>(normalize_axis(n.attr_int("axis"), x->shape().size()));
  const int src = b.natural(x);
  const md_t md = b.stored(src).md;
  dnnl::softmax_v2_forward::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("softmax", [&] {
    dnnl::softmax_v2_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::softmax_accurate, md, md,
                                     axis);
    pd = dnnl::softmax_v2_forward::primitive_desc(d, scratch_attr(), cpu_engine());
  }));
  b.consume(g);
  const int dst = destination(b, g.output(), src, md, {});
  OnednnStep info;
  info.kind = "softmax";
  info.nodes = g.node_names();
  info.detail = fmt::format("axis {} of {}", axis, describe_md(md));
  b.add_primitive(dnnl::softmax_v2_forward(pd), pd, {{DNNL_ARG_SRC, src, {}}, {DNNL_ARG_DST, dst, {}}}, {}, info);
  return Status::ok();
}

Status emit_reduce_mean(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  COMPRESS_RETURN_IF_ERROR(check_float(x, n));
  const ir::Shape& xs = x->shape();
  ir::Shape kept = xs;
  const auto& axes = n.attr_ints("axes");
  COMPRESS_CHECK(!axes.empty() && !xs.empty(), kUnsup, "reduce_mean over no axes");
  for (int64_t a : axes) kept[static_cast<size_t>(normalize_axis(a, xs.size()))] = 1;
  COMPRESS_CHECK(ir::numel(xs) > 0, kUnsup, "reduce_mean of empty data");
  const int src = b.natural(x);
  const md_t src_md = b.stored(src).md;
  if (is_plain(src_md) && src_md.data_type() == dt::f32) {  // bf16 plans keep activations in bf16
    // Note [Native reduce_mean]: oneDNN 2.6 has only its reference kernel
    // for plain-layout reductions (6.6 us of a 40 us transformer encoder's
    // run for a [2, 16, 32] mean); when the reduced axes are consecutive, the
    // data is [outer, reduced, inner] and a loop does it, summing in double
    // in input order as the reference backend does (bit-identical).
    std::vector<bool> reduced(xs.size(), false);
    for (int64_t a : axes) reduced[static_cast<size_t>(normalize_axis(a, xs.size()))] = true;
    size_t first = 0, last = 0;
    bool seen = false, consecutive = true;
    for (size_t d = 0; d < xs.size(); ++d) {
      if (!reduced[d]) continue;
      if (seen && d != last + 1) consecutive = false;
      if (!seen) first = d;
      seen = true;
      last = d;
    }
    if (consecutive) {
      int64_t outer = 1, count = 1, inner = 1;
      for (size_t d = 0; d < xs.size(); ++d) (d < first ? outer : d <= last ? count : inner) *= xs[d];
      b.consume(g);
      const int dst = b.new_stored(g.output(), plain_md(g.output()->shape(), dt::f32));
      // The sums buffer lives with the step (plans are not thread-safe), not allocated per run.
      auto fn = [src, dst, outer, count, inner,
                 sums = std::vector<double>(static_cast<size_t>(inner))](StepContext& ctx) mutable -> Status {
        const float* x = static_cast<const float*>(ctx.ptr(src));
        float* y = static_cast<float*>(ctx.ptr(dst));
        for (int64_t o = 0; o < outer; ++o) {
          std::fill(sums.begin(), sums.end(), 0.0);
          const float* block = x + o * count * inner;
          for (int64_t r = 0; r < count; ++r) {
            for (int64_t i = 0; i < inner; ++i) sums[static_cast<size_t>(i)] += block[r * inner + i];
          }
          for (int64_t i = 0; i < inner; ++i) {
            y[o * inner + i] = static_cast<float>(sums[static_cast<size_t>(i)] / static_cast<double>(count));
          }
        }
        return Status::ok();
      };
      OnednnStep info;
      info.kind = "native";
      info.nodes = g.node_names();
      info.detail = fmt::format("mean over {} of {} rows x {} (plain f32)", count, outer, inner);
      b.add_function(fn, {src}, {dst}, info);
      return Status::ok();
    }
  }
  const md_t dst_md = plain_md(kept, src_md.data_type());
  dnnl::reduction::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("reduction", [&] {
    dnnl::reduction::desc d(dnnl::algorithm::reduction_mean, src_md, dst_md, 0.f, 0.f);
    pd = dnnl::reduction::primitive_desc(d, scratch_attr(), cpu_engine());
  }));
  b.consume(g);
  // keepdim=0 drops the reduced dims: the same plain bytes under the IR shape.
  const int dst = b.new_stored(g.output(), plain_md(g.output()->shape(), src_md.data_type()));
  OnednnStep info;
  info.kind = "reduction";
  info.nodes = g.node_names();
  info.detail = fmt::format("mean {} -> {}", describe_md(src_md), describe_md(dst_md));
  b.add_primitive(dnnl::reduction(pd), pd, {{DNNL_ARG_SRC, src, {}}, {DNNL_ARG_DST, dst, dst_md}}, {}, info);
  return Status::ok();
}

}  // namespace compress::runtime::onednn
