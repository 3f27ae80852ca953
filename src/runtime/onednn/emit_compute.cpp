// Emitters for convolution, inner product and matmul in f32/bf16, with fused post-ops.
#include <cmath>

#include "builder.h"
#include "sparse_step.h"

namespace compress::runtime::onednn {
namespace {

using ir::DType;
using ir::Node;
using ir::Value;
constexpr StatusCode kUnsup = StatusCode::kUnsupported;

}  // namespace

namespace {

using ir::OpKind;
using Specs = std::vector<EltwiseSpec>;

// One row per elementwise op oneDNN runs as an eltwise primitive or post-op.
struct EltwiseMapping {
  OpKind kind;
  Specs (*specs)(const Node& node);
  // Note [Requantizing after f32 post-ops] (emit_quantized.cpp): a quantize
  // after this post may become the int8 layer's own output; not after ops
  // oneDNN implements with eltwise_linear or clip (one of each per chain).
  bool requantize_after;
};

const EltwiseMapping kEltwiseOps[] = {
    {OpKind::relu, [](const Node&) { return Specs{{dnnl::algorithm::eltwise_relu, 0.f, 0.f}}; }, true},
    {OpKind::relu6, [](const Node&) { return Specs{{dnnl::algorithm::eltwise_clip_v2, 0.f, 6.f}}; }, false},
    {OpKind::silu, [](const Node&) { return Specs{{dnnl::algorithm::eltwise_swish, 1.f, 0.f}}; }, true},
    {OpKind::sigmoid, [](const Node&) { return Specs{{dnnl::algorithm::eltwise_logistic, 0.f, 0.f}}; }, true},
    {OpKind::tanh, [](const Node&) { return Specs{{dnnl::algorithm::eltwise_tanh, 0.f, 0.f}}; }, true},
    {OpKind::hardswish, [](const Node&) { return Specs{{dnnl::algorithm::eltwise_hardswish, 0.f, 0.f}}; }, true},
    // oneDNN 2.6 has no hardsigmoid: clip(x / 6 + 1/2, 0, 1).
    {OpKind::hardsigmoid,
     [](const Node&) {
       return Specs{{dnnl::algorithm::eltwise_linear, 1.f / 6.f, 0.5f}, {dnnl::algorithm::eltwise_clip_v2, 0.f, 1.f}};
     },
     false},
    {OpKind::gelu,
     [](const Node& n) {
       const bool tanh = n.attr_string("approximate") == "tanh";
       return Specs{{tanh ? dnnl::algorithm::eltwise_gelu_tanh : dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f}};
     },
     true},
    // The bounds are rounded to the tensor's type (f32) first, as docs/ops.md says.
    {OpKind::clamp,
     [](const Node& n) {
       return Specs{{dnnl::algorithm::eltwise_clip_v2, static_cast<float>(n.attr_float("min")),
                     static_cast<float>(n.attr_float("max"))}};
     },
     false},
};

const EltwiseMapping* eltwise_mapping(OpKind kind) {
  for (const EltwiseMapping& m : kEltwiseOps) {
    if (m.kind == kind) return &m;
  }
  return nullptr;
}

}  // namespace

bool is_eltwise_op(ir::OpKind kind) { return eltwise_mapping(kind) != nullptr; }

bool requantizes_after(ir::OpKind kind) {
  const EltwiseMapping* m = eltwise_mapping(kind);
  return m != nullptr && m->requantize_after;
}

Expected<std::vector<EltwiseSpec>> eltwise_spec(const Node& node) {
  const EltwiseMapping* m = eltwise_mapping(node.kind());
  if (m == nullptr) return unsupported("'{}' is not a oneDNN eltwise op", node.op());
  return m->specs(node);
}

Status append_posts(const Group& g, dnnl::post_ops& ops) {
  for (const Node* post : g.posts) {
    if (post == g.requantize) continue;  // the int8 emitters add it (emit_quantized.cpp)
    if (post->is(ir::OpKind::add)) {
      ops.append_sum(1.0f);
      continue;
    }
    COMPRESS_ASSIGN_OR_RETURN(std::vector<EltwiseSpec> specs, eltwise_spec(*post));
    for (const EltwiseSpec& s : specs) ops.append_eltwise(1.0f, s.alg, s.alpha, s.beta);
  }
  return Status::ok();
}

std::string post_summary(const Group& g) {
  std::string s;
  for (const Node* post : g.posts)
    s += (s.empty() ? "" : ", ") + (post->is(ir::OpKind::add) ? std::string("sum") : post->op());
  return s.empty() ? std::string() : "post-ops: " + s;
}

Expected<int> group_destination(Builder& b, const Group& g, const md_t& dst_md, const std::vector<int>& reads,
                                std::string* detail) {
  const Value* out = g.output();
  if (g.residual == nullptr) return b.new_stored(out, dst_md);
  const int r = b.natural(g.residual);
  // Not over one of the primitive's own sources (add(conv(x), x)): it still
  // reads them while it writes.
  if (b.stored(r).md == dst_md && b.can_overwrite(r, reads, /*self_read_ok=*/false)) {
    *detail += ", sum in place";
    return b.share(out, r);
  }
  const int dst = b.new_stored(out, dst_md);
  COMPRESS_RETURN_IF_ERROR(b.add_reorder(r, dst, md_t(), md_t(), "residual for the sum post-op"));
  return dst;
}

namespace {

Status check_f32_constant(const Value* v, const char* what, const Node& n) {
  COMPRESS_CHECK(v->is_constant() && v->dtype() == DType::kF32, kUnsup,
                 "{} with a non-constant or non-f32 {} (oneDNN reorders weights once at compile time)", n.op(), what);
  return Status::ok();
}

dnnl::primitive_attr base_attr(const Group& g, Status* status) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops ops;
  *status = append_posts(g, ops);
  attr.set_post_ops(ops);
  return attr;
}

}  // namespace

Status emit_conv(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  const Value* w = n.input(1);
  const Value* bias = n.num_inputs() > 2 ? n.input(2) : nullptr;
  COMPRESS_CHECK(x->dtype() == DType::kF32, kUnsup, "conv2d on {} input", ir::dtype_name(x->dtype()));
  COMPRESS_RETURN_IF_ERROR(check_f32_constant(w, "weight", n));
  if (bias != nullptr) COMPRESS_RETURN_IF_ERROR(check_f32_constant(bias, "bias", n));
  const ir::Shape& xs = x->shape();
  const ir::Shape& ws = w->shape();
  const ir::Shape& ys = n.output(0)->shape();
  COMPRESS_CHECK(xs.size() == 4 && ws.size() == 4 && ys.size() == 4, kUnsup, "conv2d needs rank-4 operands");
  const int64_t groups = n.attr_int("groups");
  const auto& stride = n.attr_ints("stride");
  const auto& pad = n.attr_ints("padding");
  const auto& dil = n.attr_ints("dilation");
  const dt cdt = b.compute_type();
  const dims_t wdims = groups > 1 ? dims_t{groups, ws[0] / groups, ws[1], ws[2], ws[3]} : to_dims(ws);
  std::string why_dense;  // Note [Sparse weight steps]
  COMPRESS_ASSIGN_OR_RETURN(const bool sparse, emit_sparse_weight_step(b, g, &why_dense));
  if (sparse) return Status::ok();
  COMPRESS_ASSIGN_OR_RETURN(const void* wdata, dense_weight_data(b, w));

  Status posts;
  dnnl::primitive_attr attr = base_attr(g, &posts);
  COMPRESS_RETURN_IF_ERROR(posts);
  const md_t src_any(to_dims(xs), cdt, tag::any);
  const md_t w_any(wdims, cdt, tag::any);
  const md_t b_md = bias ? plain_md({ws[0]}, dt::f32) : md_t();
  const md_t dst_any(to_dims(ys), cdt, tag::any);
  auto make_pd = [&](const md_t& src, const md_t& dst) {
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src,
                                      w_any, b_md, dst, {stride[0], stride[1]}, {dil[0] - 1, dil[1] - 1},
                                      {pad[0], pad[1]}, {pad[2], pad[3]});
    return dnnl::convolution_forward::primitive_desc(d, attr, cpu_engine());
  };
  dnnl::convolution_forward::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("convolution", [&] { pd = make_pd(src_any, dst_any); }));
  // Note [Keeping the producer's layout]
  // The layout oneDNN prefers for a conv can differ from its neighbours'
  // (grouped convs pick nChw8c where the rest of a net is nhwc): a conv that
  // runs well on the layout it is handed saves a reorder on each side.
  const md_t& have = b.stored(b.natural(x)).md;
  if (have != pd.src_desc() && have.data_type() == cdt && !is_plain(have)) {
    try {
      auto kept = make_pd(have, like(have, to_dims(ys), cdt));
      if (impl_name(kept).find("ref") == std::string::npos) pd = kept;
    } catch (const dnnl::error&) {
      // No implementation for that layout: keep the preferred one.
    }
  }

  b.consume(g);
  COMPRESS_ASSIGN_OR_RETURN(int src, b.get(x, pd.src_desc()));
  COMPRESS_ASSIGN_OR_RETURN(dnnl::memory wmem,
                            b.weight(w, "conv", plain_md(ir::Shape(wdims.begin(), wdims.end()), dt::f32),
                                     wdata, pd.weights_desc()));
  std::vector<std::pair<int, dnnl::memory>> fixed = {{DNNL_ARG_WEIGHTS, wmem}};
  if (bias != nullptr) {
    COMPRESS_ASSIGN_OR_RETURN(dnnl::memory bmem,
                              b.weight(bias, "bias", b_md, bias->constant().raw_data(), pd.bias_desc()));
    fixed.emplace_back(DNNL_ARG_BIAS, bmem);
  }
  OnednnStep info;
  info.kind = "convolution";
  info.nodes = g.node_names();
  info.detail = fmt::format("{} -> {}, weights {}", describe_md(pd.src_desc()), describe_md(pd.dst_desc()),
                            describe_md(pd.weights_desc()));
  if (!why_dense.empty()) info.detail += "; " + why_dense;
  COMPRESS_ASSIGN_OR_RETURN(int dst, group_destination(b, g, pd.dst_desc(), {src}, &info.detail));
  const std::string posts_text = post_summary(g);
  if (!posts_text.empty()) info.detail += "; " + posts_text;
  b.add_primitive(dnnl::convolution_forward(pd), pd, {{DNNL_ARG_SRC, src, {}}, {DNNL_ARG_DST, dst, {}}}, fixed, info);
  return Status::ok();
}

Status emit_linear(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  const Value* w = n.input(1);
  const Value* bias = n.num_inputs() > 2 ? n.input(2) : nullptr;
  COMPRESS_CHECK(x->dtype() == DType::kF32, kUnsup, "linear on {} input", ir::dtype_name(x->dtype()));
  COMPRESS_RETURN_IF_ERROR(check_f32_constant(w, "weight", n));
  if (bias != nullptr) COMPRESS_RETURN_IF_ERROR(check_f32_constant(bias, "bias", n));
  const ir::Shape& xs = x->shape();
  COMPRESS_CHECK(!xs.empty() && w->shape().size() == 2, kUnsup, "linear needs a rank >= 1 input and a 2-D weight");
  const int64_t k = xs.back(), out = w->shape()[0];
  const int64_t m = k == 0 ? 0 : ir::numel(xs) / k;
  COMPRESS_CHECK(m > 0 && k > 0 && out > 0, kUnsup, "linear with an empty dimension");
  std::string why_dense;  // Note [Sparse weight steps]
  COMPRESS_ASSIGN_OR_RETURN(const bool sparse, emit_sparse_weight_step(b, g, &why_dense));
  if (sparse) return Status::ok();
  COMPRESS_ASSIGN_OR_RETURN(const void* wdata, dense_weight_data(b, w));
  const dt cdt = b.compute_type();

  Status posts;
  dnnl::primitive_attr attr = base_attr(g, &posts);
  COMPRESS_RETURN_IF_ERROR(posts);
  // Leading dims collapse into the rows of one inner product (plain layout only).
  const md_t src_md = plain_md({m, k}, cdt);
  const md_t w_any({out, k}, cdt, tag::any);
  const md_t b_md = bias ? plain_md({out}, dt::f32) : md_t();
  const md_t dst_md = plain_md({m, out}, cdt);
  dnnl::inner_product_forward::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("inner product", [&] {
    dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, src_md, w_any, b_md, dst_md);
    pd = dnnl::inner_product_forward::primitive_desc(d, attr, cpu_engine());
  }));
  COMPRESS_CHECK(pd.src_desc() == src_md && pd.dst_desc() == dst_md, kUnsup,
                 "oneDNN's inner product wants src {} / dst {}", describe_md(pd.src_desc()),
                 describe_md(pd.dst_desc()));

  b.consume(g);
  COMPRESS_ASSIGN_OR_RETURN(int src, b.get_plain(x, from_dnnl(cdt)));
  COMPRESS_ASSIGN_OR_RETURN(dnnl::memory wmem,
                            b.weight(w, "linear", plain_md(w->shape(), dt::f32), wdata, pd.weights_desc()));
  std::vector<std::pair<int, dnnl::memory>> fixed = {{DNNL_ARG_WEIGHTS, wmem}};
  if (bias != nullptr) {
    COMPRESS_ASSIGN_OR_RETURN(dnnl::memory bmem,
                              b.weight(bias, "bias", b_md, bias->constant().raw_data(), pd.bias_desc()));
    fixed.emplace_back(DNNL_ARG_BIAS, bmem);
  }
  OnednnStep info;
  info.kind = "inner_product";
  info.nodes = g.node_names();
  info.detail = fmt::format("{} x weights {}", describe_md(src_md), describe_md(pd.weights_desc()));
  if (!why_dense.empty()) info.detail += "; " + why_dense;
  COMPRESS_ASSIGN_OR_RETURN(int dst, group_destination(b, g, plain_md(g.output()->shape(), cdt), {src}, &info.detail));
  const std::string posts_text = post_summary(g);
  if (!posts_text.empty()) info.detail += "; " + posts_text;
  b.add_primitive(dnnl::inner_product_forward(pd), pd, {{DNNL_ARG_SRC, src, src_md}, {DNNL_ARG_DST, dst, dst_md}},
                  fixed, info);
  return Status::ok();
}

Status emit_matmul(Builder& b, const Group& g) {
  const Node& n = *g.main;
  const Value* a = n.input(0);
  const Value* w = n.input(1);
  COMPRESS_CHECK(a->dtype() == DType::kF32 && w->dtype() == DType::kF32, kUnsup, "matmul on non-f32 operands");
  ir::Shape as = a->shape(), ws = w->shape();
  const ir::Shape& ys = n.output(0)->shape();
  COMPRESS_CHECK(as.size() >= 2 && ws.size() >= 2, kUnsup, "matmul with a 1-D operand (torch.matmul's vector forms)");
  const size_t rank = ys.size();
  while (as.size() < rank) as.insert(as.begin(), 1);
  while (ws.size() < rank) ws.insert(ws.begin(), 1);
  const dt cdt = b.compute_type();

  Status posts;
  dnnl::primitive_attr attr = base_attr(g, &posts);
  COMPRESS_RETURN_IF_ERROR(posts);
  const md_t a_md = plain_md(as, cdt);
  const md_t w_md = w->is_constant() ? md_t(to_dims(ws), cdt, tag::any) : plain_md(ws, cdt);
  const md_t dst_md = plain_md(ys, cdt);
  dnnl::matmul::primitive_desc pd;
  COMPRESS_RETURN_IF_ERROR(try_dnnl("matmul", [&] {
    dnnl::matmul::desc d(a_md, w_md, dst_md);
    pd = dnnl::matmul::primitive_desc(d, attr, cpu_engine());
  }));

  b.consume(g);
  COMPRESS_ASSIGN_OR_RETURN(int src, b.get_plain(a, from_dnnl(cdt)));
  std::vector<StepArg> args = {{DNNL_ARG_SRC, src, a_md}};
  std::vector<std::pair<int, dnnl::memory>> fixed;
  std::vector<int> reads = {src};
  if (w->is_constant()) {
    COMPRESS_ASSIGN_OR_RETURN(
        dnnl::memory wmem, b.weight(w, "matmul", plain_md(ws, dt::f32), w->constant().raw_data(), pd.weights_desc()));
    fixed.emplace_back(DNNL_ARG_WEIGHTS, wmem);
  } else {
    COMPRESS_ASSIGN_OR_RETURN(int wid, b.get_plain(w, from_dnnl(cdt)));
    args.push_back({DNNL_ARG_WEIGHTS, wid, w_md});
    reads.push_back(wid);
  }
  OnednnStep info;
  info.kind = "matmul";
  info.nodes = g.node_names();
  info.detail = fmt::format("{} x {}", describe_md(a_md), describe_md(pd.weights_desc()));
  COMPRESS_ASSIGN_OR_RETURN(int dst, group_destination(b, g, dst_md, reads, &info.detail));
  const std::string posts_text = post_summary(g);
  if (!posts_text.empty()) info.detail += "; " + posts_text;
  args.push_back({DNNL_ARG_DST, dst, {}});
  b.add_primitive(dnnl::matmul(pd), pd, args, fixed, info);
  return Status::ok();
}

}  // namespace compress::runtime::onednn
