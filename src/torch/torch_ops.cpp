#include "torch_ops.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "compress/ir/op_schema.h"
#include "compress/support/check.h"

namespace compress::torch {
namespace {

using Ints = std::vector<int64_t>;
using Outputs = std::vector<at::Tensor>;

// Pads H and W with `value` when the padding is asymmetric; returns the
// symmetric padding left for the op itself.
at::Tensor pad_asymmetric(const at::Tensor& x, const Ints& pad, double value, Ints* symmetric) {
  // pad = [top, left, bottom, right]
  if (pad[0] == pad[2] && pad[1] == pad[3]) {
    *symmetric = {pad[0], pad[1]};
    return x;
  }
  *symmetric = {0, 0};
  return at::constant_pad_nd(x, {pad[1], pad[3], pad[0], pad[2]}, value);
}

at::Tensor attention(const ir::Node& node, const Outputs& in) {
  const at::Tensor& q = in[0];
  const at::Tensor& k = in[1];
  const at::Tensor& v = in[2];
  double scale = node.attr_float("scale");
  if (scale == 0.0) scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * scale;
  const int64_t L = q.size(-2), S = k.size(-2);
  if (in.size() > 3) {
    if (in[3].scalar_type() == at::kBool) {
      scores = scores.masked_fill(in[3].logical_not(), -std::numeric_limits<float>::infinity());
    } else {
      scores = scores + in[3];
    }
  }
  if (node.attr_int("is_causal") != 0) {
    at::Tensor causal = at::ones({L, S}, at::TensorOptions().dtype(at::kBool).device(q.device())).triu(1);
    scores = scores.masked_fill(causal, -std::numeric_limits<float>::infinity());
  }
  return at::matmul(at::softmax(scores, -1), v);
}

at::Tensor fake_quant(const ir::Node& node, const at::Tensor& x) {
  const ir::ValueType& type = node.output()->type();
  (void)type;
  const auto& scales = node.attr_floats("scale");
  const auto& zps = node.attr_ints("zero_point");
  const auto dtype = ir::dtype_from_name(node.attr_string("dtype")).value_or(ir::DType::kI8);
  int64_t qmin = ir::traits(dtype).min_value, qmax = ir::traits(dtype).max_value;
  if (node.attr_int("qmin") != 0 || node.attr_int("qmax") != 0) {
    qmin = node.attr_int("qmin");
    qmax = node.attr_int("qmax");
  }
  if (node.attr_int("group_size") > 0) {
    throw Error(unsupported("fake_quant '{}': per-group fake quantization is not trainable yet", node.name()));
  }
  if (scales.size() == 1 && node.attr_int("axis") == -1) {
    return at::fake_quantize_per_tensor_affine(x, scales[0], zps.empty() ? 0 : zps[0], qmin, qmax);
  }
  std::vector<float> s(scales.begin(), scales.end());
  std::vector<int32_t> z(scales.size(), 0);
  for (size_t i = 0; i < zps.size() && i < z.size(); ++i) z[i] = static_cast<int32_t>(zps[i]);
  at::Tensor scale_t = at::tensor(s).to(x.device());
  at::Tensor zp_t = at::tensor(z).to(x.device());
  int64_t axis = node.attr_int("axis");
  if (axis < 0) axis += x.dim();
  return at::fake_quantize_per_channel_affine(x, scale_t, zp_t, axis, qmin, qmax);
}

Outputs run(const ir::Node& node, const Outputs& in, const TorchRunContext& ctx) {
  const std::string& op = node.op();
  if (op == "conv2d") {
    Ints pad;
    at::Tensor x = pad_asymmetric(in[0], node.attr_ints("padding"), 0.0, &pad);
    at::Tensor bias = in.size() > 2 ? in[2] : at::Tensor();
    return {at::conv2d(x, in[1], bias, node.attr_ints("stride"), pad, node.attr_ints("dilation"),
                       node.attr_int("groups"))};
  }
  if (op == "linear") return {at::linear(in[0], in[1], in.size() > 2 ? in[2] : at::Tensor())};
  if (op == "matmul") return {at::matmul(in[0], in[1])};
  if (op == "batch_norm") {
    // Running statistics are updated in place in training mode, like nn.BatchNorm.
    return {at::batch_norm(in[0], in[1], in[2], in[3], in[4], ctx.training, ctx.batch_norm_momentum,
                           node.attr_float("eps"), /*cudnn_enabled=*/false)};
  }
  if (op == "layer_norm") {
    const int64_t k = node.attr_int("normalized_ndim");
    const auto sizes = in[0].sizes();
    Ints shape(sizes.end() - k, sizes.end());
    return {at::layer_norm(in[0], shape, in.size() > 1 ? in[1] : at::Tensor(), in.size() > 2 ? in[2] : at::Tensor(),
                           node.attr_float("eps"))};
  }
  if (op == "relu") return {at::relu(in[0])};
  if (op == "relu6") return {at::hardtanh(in[0], 0.0, 6.0)};
  if (op == "silu") return {at::silu(in[0])};
  if (op == "sigmoid") return {at::sigmoid(in[0])};
  if (op == "tanh") return {at::tanh(in[0])};
  if (op == "hardswish") return {at::hardswish(in[0])};
  if (op == "hardsigmoid") return {at::hardsigmoid(in[0])};
  if (op == "gelu") return {at::gelu(in[0], node.attr_string("approximate"))};
  if (op == "clamp") return {at::clamp(in[0], node.attr_float("min"), node.attr_float("max"))};
  if (op == "add") return {at::add(in[0], in[1])};
  if (op == "sub") return {at::sub(in[0], in[1])};
  if (op == "mul") return {at::mul(in[0], in[1])};
  if (op == "div") return {at::div(in[0], in[1])};
  if (op == "concat") return {at::cat(in, node.attr_int("axis"))};
  if (op == "split") {
    auto parts = at::split_with_sizes(in[0], node.attr_ints("sizes"), node.attr_int("axis"));
    return Outputs(parts.begin(), parts.end());
  }
  if (op == "slice") {
    return {at::slice(in[0], node.attr_int("axis"), node.attr_int("start"), node.attr_int("end"), node.attr_int("step"))};
  }
  if (op == "reshape") return {at::reshape(in[0], node.attr_ints("shape"))};
  if (op == "flatten") return {at::flatten(in[0], node.attr_int("start_dim"), node.attr_int("end_dim"))};
  if (op == "transpose") return {at::transpose(in[0], node.attr_int("dim0"), node.attr_int("dim1"))};
  if (op == "permute") return {in[0].permute(node.attr_ints("perm"))};
  if (op == "max_pool2d") {
    Ints pad;
    at::Tensor x = pad_asymmetric(in[0], node.attr_ints("padding"), -std::numeric_limits<double>::infinity(), &pad);
    return {at::max_pool2d(x, node.attr_ints("kernel"), node.attr_ints("stride"), pad, node.attr_ints("dilation"),
                           node.attr_int("ceil_mode") != 0)};
  }
  if (op == "avg_pool2d") {
    const Ints& p = node.attr_ints("padding");
    if (p[0] != p[2] || p[1] != p[3]) {
      throw Error(unsupported("avg_pool2d '{}': asymmetric padding is not trainable", node.name()));
    }
    return {at::avg_pool2d(in[0], node.attr_ints("kernel"), node.attr_ints("stride"), {p[0], p[1]},
                           node.attr_int("ceil_mode") != 0, node.attr_int("count_include_pad") != 0)};
  }
  if (op == "adaptive_avg_pool2d") return {at::adaptive_avg_pool2d(in[0], node.attr_ints("output_size"))};
  if (op == "adaptive_max_pool2d") return {std::get<0>(at::adaptive_max_pool2d(in[0], node.attr_ints("output_size")))};
  if (op == "reduce_mean") return {at::mean(in[0], node.attr_ints("axes"), node.attr_int("keepdim") != 0)};
  if (op == "softmax") return {at::softmax(in[0], node.attr_int("axis"))};
  if (op == "embedding") return {at::embedding(in[1], in[0])};
  if (op == "scaled_dot_product_attention") return {attention(node, in)};
  if (op == "fake_quant") return {fake_quant(node, in[0])};
  throw Error(unsupported("node '{}' ({}): op is not supported by the trainable executor", node.name(), op));
}

}  // namespace

Expected<Outputs> run_torch_node(const ir::Node& node, const Outputs& inputs, const TorchRunContext& context) {
  try {
    return run(node, inputs, context);
  } catch (const Error& e) {
    return e.status();
  } catch (const c10::Error& e) {
    return make_error(StatusCode::kInvalidArgument, "node '{}' ({}): {}", node.name(), node.op(),
                      e.what_without_backtrace());
  }
}

}  // namespace compress::torch
