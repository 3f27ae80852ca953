// Sparse weight steps of the onednn plan: the sparse kernels above the measured crossover, densified weights below.
#include "sparse_step.h"

#include <cstring>
#include <memory>

#include "compress/ir/sparse_layout.h"
#include "compress/runtime/sparse_kernels.h"

namespace compress::runtime::onednn {
namespace {

using ir::DType;
using ir::Node;
using ir::Value;

bool dense_f32_constant(const Value* v, int64_t numel) {
  return v->is_constant() && v->dtype() == DType::kF32 && !v->constant().is_sparse() &&
         !v->constant().is_quantized() && v->constant().numel() == numel;
}

// The sparse kernel's epilogue op for one oneDNN eltwise step (the eltwise
// table in emit_compute.cpp says which steps an op is); false for an
// algorithm the kernel does not have.
bool epilogue_op(const EltwiseSpec& spec, sparse::PostOp* op) {
  using sparse::PostKind;
  using dnnl::algorithm;
  switch (spec.alg) {
    case algorithm::eltwise_relu:
      if (spec.alpha != 0.f) return false;  // leaky relu
      *op = {PostKind::kRelu, 0, 0};
      return true;
    case algorithm::eltwise_clip_v2: *op = {PostKind::kClip, spec.alpha, spec.beta}; return true;
    case algorithm::eltwise_linear: *op = {PostKind::kLinear, spec.alpha, spec.beta}; return true;
    case algorithm::eltwise_swish:
      if (spec.alpha != 1.f) return false;
      *op = {PostKind::kSilu, 0, 0};
      return true;
    case algorithm::eltwise_logistic: *op = {PostKind::kSigmoid, 0, 0}; return true;
    case algorithm::eltwise_tanh: *op = {PostKind::kTanh, 0, 0}; return true;
    case algorithm::eltwise_hardswish: *op = {PostKind::kHardswish, 0, 0}; return true;
    case algorithm::eltwise_gelu_tanh: *op = {PostKind::kGeluTanh, 0, 0}; return true;
    case algorithm::eltwise_gelu_erf: *op = {PostKind::kGeluErf, 0, 0}; return true;
    default: return false;
  }
}

// The group's posts as kernel epilogue ops; false for one it cannot apply.
bool epilogue_posts(const Group& g, std::vector<sparse::PostOp>* posts, std::string* unsupported) {
  for (const Node* post : g.posts) {
    if (post->is(ir::OpKind::add)) {
      posts->push_back({sparse::PostKind::kAddResidual, 0, 0});
      continue;
    }
    auto specs = eltwise_spec(*post);
    bool ok = specs.has_value();
    for (size_t i = 0; ok && i < specs->size(); ++i) {
      sparse::PostOp op{};
      ok = epilogue_op((*specs)[i], &op);
      if (ok) posts->push_back(op);
    }
    if (!ok) {
      *unsupported = post->op();
      return false;
    }
  }
  return true;
}

}  // namespace

Expected<const void*> dense_weight_data(Builder& b, const Value* v) {
  const ir::Tensor& t = v->constant();
  if (!t.is_sparse()) return t.raw_data();
  COMPRESS_CHECK(t.dtype() == DType::kF32, StatusCode::kUnsupported, "sparse {} weight '{}'",
                 ir::dtype_name(t.dtype()), v->name());
  Status densified;
  COMPRESS_ASSIGN_OR_RETURN(dnnl::memory m,
                            b.constant_memory(v, "densified", plain_md(t.shape(), dt::f32), [&](void* data) {
                              auto dense = t.to_dense();
                              if (!dense) {
                                densified = dense.status();
                                return;
                              }
                              std::memcpy(data, dense->raw_data(), dense->nbytes());
                            }));
  COMPRESS_RETURN_IF_ERROR(densified);
  return static_cast<const void*>(m.get_data_handle());
}

Expected<bool> emit_sparse_weight_step(Builder& b, const Group& g, std::string* why_dense) {
  const Node& n = *g.main;
  const Value* x = n.input(0);
  const Value* w = n.input(1);
  const Value* bias = n.num_inputs() > 2 ? n.input(2) : nullptr;
  if (!w->is_constant() || !w->constant().is_sparse()) return false;
  const bool is_linear = n.is(ir::OpKind::linear);
  auto dense = [&](std::string why) {
    *why_dense = "sparse " + std::string(ir::sparse_format_name(w->constant().sparse_layout()->format)) +
                 " weight densified: " + why;
    return false;
  };
  if (b.compute_type() != dt::f32) return dense("bf16 compute");
  if (x->dtype() != DType::kF32 || w->dtype() != DType::kF32 || w->constant().is_quantized()) {
    return dense("not f32");
  }
  const ir::Shape& xs = x->shape();
  const ir::Shape& ws = w->shape();
  const ir::Shape& ys = g.output()->shape();
  if (bias != nullptr && !dense_f32_constant(bias, ws[0])) return dense("the bias is not a dense f32 constant");
  std::vector<sparse::PostOp> posts;
  std::string unsupported_post;
  if (!epilogue_posts(g, &posts, &unsupported_post)) return dense("no sparse epilogue for " + unsupported_post);
  if (g.residual != nullptr && (g.residual->dtype() != DType::kF32 || g.residual->shape() != ys)) {
    return dense("the residual is not an f32 tensor of the output's shape");
  }

  int64_t columns = 0, batch = 0;
  sparse::ConvGeometry geometry;
  if (is_linear) {
    if (xs.empty() || ws.size() != 2 || xs.back() != ws[1] || xs.back() == 0) return dense("shape");
    batch = ir::numel(xs) / xs.back();
    columns = batch;
  } else {
    const auto& stride = n.attr_ints("stride");
    const auto& pad = n.attr_ints("padding");
    const auto& dil = n.attr_ints("dilation");
    if (n.attr_int("groups") != 1) return dense("grouped convolution");
    if (xs.size() != 4 || ws.size() != 4 || ys.size() != 4 || xs[1] != ws[1]) return dense("shape");
    geometry.batch = xs[0], geometry.channels = xs[1], geometry.height = xs[2], geometry.width = xs[3];
    geometry.kernel_h = ws[2], geometry.kernel_w = ws[3];
    geometry.stride_h = stride[0], geometry.stride_w = stride[1];
    geometry.pad_top = pad[0], geometry.pad_left = pad[1], geometry.pad_bottom = pad[2], geometry.pad_right = pad[3];
    geometry.dilation_h = dil[0], geometry.dilation_w = dil[1];
    if (geometry.out_h() != ys[2] || geometry.out_w() != ys[3]) return dense("shape");
    columns = ys[0] * ys[2] * ys[3];
  }
  if (columns <= 0) return dense("empty");
  COMPRESS_ASSIGN_OR_RETURN(sparse::CsrMatrix csr, sparse::csr_from_tensor(w->constant()));
  const double sparsity = csr.sparsity();
  const bool im2col = !is_linear && !geometry.is_pointwise();
  const char* kind = is_linear ? "linear" : im2col ? "conv (im2col)" : "1x1 conv";
  const double crossover = sparse::crossover_sparsity(
      is_linear ? sparse::Product::kLinear : im2col ? sparse::Product::kIm2colConv : sparse::Product::kPointwiseConv,
      is_linear ? batch : geometry.batch);
  // A weight pruned to the crossover ratio counts as reaching it (pruning
  // rounds the zero count; the sweep's resolution is 5-10 points anyway).
  if (sparsity < crossover - 0.005) {
    return dense(fmt::format("{:.2f}% zeros < measured crossover {:.0f}% for a {} at batch {}", 100 * sparsity,
                             100 * crossover, kind, is_linear ? batch : geometry.batch));
  }

  b.consume(g);
  COMPRESS_ASSIGN_OR_RETURN(const int src, b.get_plain(x, DType::kF32));
  std::vector<int> reads = {src};
  int residual = -1;
  if (g.residual != nullptr) {
    COMPRESS_ASSIGN_OR_RETURN(residual, b.get_plain(g.residual, DType::kF32));
    reads.push_back(residual);
  }
  const int dst = b.new_stored(g.output(), plain_md(ys, dt::f32));
  auto matrix = std::make_shared<const sparse::CsrMatrix>(std::move(csr));
  const ir::Tensor bias_tensor = bias != nullptr ? bias->constant() : ir::Tensor();
  const sparse::KernelOptions options{b.config().threads, sparse::Isa::kAuto};
  sparse::Epilogue epilogue;
  epilogue.posts = std::move(posts);
  auto fn = [matrix, bias_tensor, epilogue, options, is_linear, batch, geometry, src, residual,
             dst](StepContext& ctx) mutable -> Status {
    epilogue.bias = bias_tensor.defined() ? bias_tensor.data<float>() : nullptr;
    epilogue.residual = residual >= 0 ? static_cast<const float*>(ctx.ptr(residual)) : nullptr;
    const auto* in = static_cast<const float*>(ctx.ptr(src));
    auto* out = static_cast<float*>(ctx.ptr(dst));
    if (is_linear) return sparse::linear(*matrix, in, batch, out, epilogue, options);
    return sparse::conv2d(*matrix, geometry, in, out, epilogue, options);
  };
  OnednnStep info;
  info.kind = is_linear ? "sparse_linear" : "sparse_conv";
  info.nodes = g.node_names();
  info.implementation = "sparse:" + sparse::selected_isa();
  info.detail = fmt::format("CSR weight {}x{}, {:.2f}% zeros >= measured crossover {:.0f}% for a {} at batch {}",
                            matrix->rows, matrix->cols, 100 * sparsity, 100 * crossover, kind,
                            is_linear ? batch : geometry.batch);
  const std::string posts_text = post_summary(g);
  if (!posts_text.empty()) info.detail += "; " + posts_text;
  b.add_function(std::move(fn), reads, {dst}, info);
  return true;
}

}  // namespace compress::runtime::onednn
