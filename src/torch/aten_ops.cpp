// aten op -> IR import handlers: the ones the lowering table's rows name, and
// the decompositions of aten ops that become several IR ops.
#include "aten_import.h"

#include <cmath>

#include "compress/support/check.h"
#include "op_lowering.h"

namespace compress::torch::aten_import {
namespace jit = ::torch::jit;
using K = ir::OpKind;
using Ints = std::vector<int64_t>;
using ir::AttributeMap;
using ir::Value;

#define TRY_ASSIGN(lhs, expr) COMPRESS_ASSIGN_OR_RETURN(lhs, expr)

Status bind(ImportContext& c, const jit::Node* n, Expected<Value*> v) {
  if (!v) return v.status();
  c.bind_ir(n->output(), *v);
  return Status::ok();
}

// Identity at inference: dropout, contiguous, detach, clone.
Status passthrough(ImportContext& c, const jit::Node* n) {
  c.bind(n->output(), c.known(n->input(0)));
  return Status::ok();
}

Ints pair(const Ints& v) { return v.size() == 1 ? Ints{v[0], v[0]} : v; }
Ints padding4(const Ints& p) {
  const Ints two = pair(p);
  return {two[0], two[1], two[0], two[1]};
}

// Input 0 of a conv or max pool, with the H/W padding of a constant_pad_nd
// in front of it (filled with `fill`) added to `padding` ([t, l, b, r]).
Expected<Value*> padded_input(ImportContext& c, const jit::Node* n, double fill, Ints* padding) {
  const Known& k = c.known(n->input(0));
  if (k.kind != Known::Kind::kPadded) return c.ir_input(0);
  if (k.pad_value != fill && !(std::isinf(fill) && std::isinf(k.pad_value) && fill < 0 && k.pad_value < 0)) {
    return c.error(StatusCode::kUnsupported, fmt::format("constant_pad_nd with fill {} in front of an op that pads "
                                                         "with {}", k.pad_value, fill));
  }
  for (size_t i = 0; i < 4; ++i) (*padding)[i] += k.pad[i];
  return k.ir;
}

Status constant_pad(ImportContext& c, const jit::Node* n) {
  // aten::constant_pad_nd(x, pad, value): pad = [left, right, top, bottom] for the last two dims.
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(Ints pad, c.ints_input(1));
  TRY_ASSIGN(double value, c.double_input(2));
  if (x->shape().size() != 4 || pad.size() > 4 || pad.size() % 2 != 0) {
    return c.error(StatusCode::kUnsupported, "constant_pad_nd is supported on the H and W dims of NCHW data only");
  }
  pad.resize(4, 0);
  for (int64_t p : pad) {
    if (p < 0) return c.error(StatusCode::kUnsupported, "constant_pad_nd with negative padding (cropping)");
  }
  Known k;
  k.kind = Known::Kind::kPadded;
  k.ir = x;
  k.pad = {pad[2], pad[0], pad[3], pad[1]};
  k.pad_value = value;
  c.bind(n->output(), std::move(k));
  return Status::ok();
}

Status conv(ImportContext& c, const jit::Node* n, bool full_signature) {
  // aten::_convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups, ...)
  // aten::conv2d(x, w, b, stride, padding, dilation, groups)
  TRY_ASSIGN(Value * w, c.ir_input(1));
  TRY_ASSIGN(Ints stride, c.ints_input(3));
  TRY_ASSIGN(Ints dilation, c.ints_input(5));
  int64_t groups = 1;
  if (full_signature) {
    TRY_ASSIGN(bool transposed, c.bool_input(6));
    if (transposed) return c.error(StatusCode::kUnsupported, "transposed convolution is not in op set v1");
    TRY_ASSIGN(groups, c.int_input(8));
  } else {
    TRY_ASSIGN(groups, c.int_input(6));
  }
  if (!c.is_constant(n->input(4)) || c.known(n->input(4)).constant.isString()) {
    return c.error(StatusCode::kUnsupported, "string padding ('same'/'valid') is not supported; use explicit padding");
  }
  TRY_ASSIGN(Ints padding, c.ints_input(4));
  if (w->shape().size() != 4) return c.error(StatusCode::kUnsupported, "only 2-D convolution is in op set v1");
  Ints padding_tlbr = padding4(padding);
  TRY_ASSIGN(Value * x, padded_input(c, n, 0.0, &padding_tlbr));
  std::vector<Value*> inputs{x, w};
  if (!c.is_none(n->input(2))) {
    TRY_ASSIGN(Value * b, c.ir_input(2));
    inputs.push_back(b);
  }
  AttributeMap attrs{{"stride", pair(stride)}, {"padding", padding_tlbr}, {"dilation", pair(dilation)},
                     {"groups", groups}};
  return bind(c, n, c.emit(K::conv2d, inputs, std::move(attrs)));
}

Status batch_norm(ImportContext& c, const jit::Node* n) {
  // aten::batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(Value * mean, c.ir_input(3));
  TRY_ASSIGN(Value * var, c.ir_input(4));
  TRY_ASSIGN(double eps, c.double_input(7));
  const int64_t channels = x->shape().size() > 1 ? x->shape()[1] : 0;
  auto param = [&](size_t i, float fill, const char* suffix) -> Expected<Value*> {
    if (!c.is_none(n->input(i))) return c.ir_input(i);
    ir::Tensor t = ir::Tensor::zeros(ir::DType::kF32, {channels}).value();
    for (int64_t k = 0; k < channels; ++k) t.data<float>()[k] = fill;
    return c.graph().add_constant(c.graph().unique_name(c.module_path() + suffix), t);
  };
  TRY_ASSIGN(Value * weight, param(1, 1.0f, ".weight"));
  TRY_ASSIGN(Value * bias, param(2, 0.0f, ".bias"));
  return bind(c, n, c.emit(K::batch_norm, {x, weight, bias, mean, var}, {{"eps", eps}}));
}

Status layer_norm(ImportContext& c, const jit::Node* n) {
  // aten::layer_norm(x, normalized_shape, weight, bias, eps, cudnn)
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(Ints shape, c.ints_input(1));
  TRY_ASSIGN(double eps, c.double_input(4));
  std::vector<Value*> inputs{x};
  const bool has_weight = !c.is_none(n->input(2));
  const bool has_bias = !c.is_none(n->input(3));
  if (has_bias && !has_weight) return c.error(StatusCode::kUnsupported, "layer_norm with bias but no weight");
  if (has_weight) {
    TRY_ASSIGN(Value * w, c.ir_input(2));
    inputs.push_back(w);
  }
  if (has_bias) {
    TRY_ASSIGN(Value * b, c.ir_input(3));
    inputs.push_back(b);
  }
  return bind(c, n, c.emit(K::layer_norm, inputs, {{"normalized_ndim", static_cast<int64_t>(shape.size())}, {"eps", eps}}));
}

Status linear(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(Value * w, c.ir_input(1));
  std::vector<Value*> inputs{x, w};
  if (n->inputs().size() > 2 && !c.is_none(n->input(2))) {
    TRY_ASSIGN(Value * b, c.ir_input(2));
    inputs.push_back(b);
  }
  return bind(c, n, c.emit(K::linear, inputs));
}

// Multiplies by a constant unless it is 1 (alpha/beta arguments).
Expected<Value*> scaled(ImportContext& c, Value* v, double factor) {
  if (factor == 1.0) return v;
  TRY_ASSIGN(Value * s, c.scalar_constant(factor));
  return c.emit(K::mul, {v, s});
}

Status matmul(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * a, c.ir_input(0));
  TRY_ASSIGN(Value * b, c.ir_input(1));
  return bind(c, n, c.emit(K::matmul, {a, b}));
}

Status addmm_like(ImportContext& c, const jit::Node* n) {
  // aten::addmm / baddbmm(input, a, b, beta, alpha) = beta * input + alpha * (a @ b)
  TRY_ASSIGN(Value * input, c.ir_input(0));
  TRY_ASSIGN(Value * a, c.ir_input(1));
  TRY_ASSIGN(Value * b, c.ir_input(2));
  TRY_ASSIGN(double beta, c.double_input(3));
  TRY_ASSIGN(double alpha, c.double_input(4));
  TRY_ASSIGN(Value * product, c.emit(K::matmul, {a, b}));
  TRY_ASSIGN(product, scaled(c, product, alpha));
  if (beta == 0.0) return bind(c, n, product);
  TRY_ASSIGN(input, scaled(c, input, beta));
  return bind(c, n, c.emit(K::add, {product, input}));
}

Status binary_op(ImportContext& c, const jit::Node* n, ir::OpKind op) {
  TRY_ASSIGN(Value * a, c.ir_input(0));
  TRY_ASSIGN(Value * b, c.ir_input(1));
  const std::string kind = n->kind().toUnqualString();
  if ((kind == "add" || kind == "add_" || kind == "sub" || kind == "sub_") && n->inputs().size() > 2) {
    TRY_ASSIGN(double alpha, c.double_input(2));
    TRY_ASSIGN(b, scaled(c, b, alpha));
  }
  if ((kind == "div" || kind == "div_") && n->inputs().size() > 2 && !c.is_none(n->input(2))) {
    return c.error(StatusCode::kUnsupported, "div with a rounding mode is not supported");
  }
  return bind(c, n, c.emit(op, {a, b}));
}

Status rsub(ImportContext& c, const jit::Node* n) {
  // aten::rsub(a, b, alpha) = b - alpha * a
  TRY_ASSIGN(Value * a, c.ir_input(0));
  TRY_ASSIGN(Value * b, c.ir_input(1));
  TRY_ASSIGN(double alpha, c.double_input(2));
  TRY_ASSIGN(a, scaled(c, a, alpha));
  return bind(c, n, c.emit(K::sub, {b, a}));
}

Status hardtanh(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(double lo, c.double_input(1));
  TRY_ASSIGN(double hi, c.double_input(2));
  if (lo == 0.0 && hi == 6.0) return bind(c, n, c.emit(K::relu6, {x}));
  return bind(c, n, c.emit(K::clamp, {x}, {{"min", lo}, {"max", hi}}));
}

Status clamp(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  double lo = -INFINITY, hi = INFINITY;
  if (!c.is_none(n->input(1))) {
    TRY_ASSIGN(lo, c.double_input(1));
  }
  if (!c.is_none(n->input(2))) {
    TRY_ASSIGN(hi, c.double_input(2));
  }
  return bind(c, n, c.emit(K::clamp, {x}, {{"min", lo}, {"max", hi}}));
}

Status gelu(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  std::string approximate = "none";
  if (n->inputs().size() > 1) {
    TRY_ASSIGN(approximate, c.string_input(1));
  }
  return bind(c, n, c.emit(K::gelu, {x}, {{"approximate", approximate}}));
}

Status cat(ImportContext& c, const jit::Node* n) {
  const Known& list = c.known(n->input(0));
  if (list.kind != Known::Kind::kList) return c.error(StatusCode::kUnsupported, "cat of a non-list");
  std::vector<Value*> inputs;
  for (const Known& item : list.items) {
    TRY_ASSIGN(Value * v, c.as_ir(item, c.module_path() + ".const"));
    inputs.push_back(v);
  }
  TRY_ASSIGN(int64_t dim, c.int_input(1));
  return bind(c, n, c.emit(K::concat, inputs, {{"axis", dim}}));
}

Status bind_list(ImportContext& c, const jit::Node* n, ir::Node* split) {
  Known list;
  list.kind = Known::Kind::kList;
  for (Value* out : split->outputs()) {
    Known item;
    item.kind = Known::Kind::kIr;
    item.ir = out;
    list.items.push_back(std::move(item));
  }
  c.bind(n->output(), std::move(list));
  return Status::ok();
}

int64_t norm_dim(int64_t d, size_t rank) { return d < 0 ? d + static_cast<int64_t>(rank) : d; }

Status chunk(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(int64_t chunks, c.int_input(1));
  TRY_ASSIGN(int64_t dim, c.int_input(2));
  dim = norm_dim(dim, x->shape().size());
  if (dim < 0 || dim >= static_cast<int64_t>(x->shape().size()) || chunks <= 0) {
    return c.error(StatusCode::kInvalidArgument, "chunk: bad dim or count");
  }
  const int64_t size = x->shape()[dim];
  const int64_t each = (size + chunks - 1) / chunks;
  Ints sizes;
  for (int64_t done = 0; done < size; done += each) sizes.push_back(std::min(each, size - done));
  TRY_ASSIGN(ir::Node * split, c.emit_node(K::split, {x}, {{"axis", dim}, {"sizes", sizes}}));
  return bind_list(c, n, split);
}

Status split(ImportContext& c, const jit::Node* n) {
  // aten::split(x, int split_size | int[] sizes, dim), aten::split_with_sizes(x, sizes, dim)
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(c10::IValue arg, c.constant_input(1));
  TRY_ASSIGN(int64_t dim, c.int_input(2));
  dim = norm_dim(dim, x->shape().size());
  if (dim < 0 || dim >= static_cast<int64_t>(x->shape().size())) return c.error(StatusCode::kInvalidArgument, "split: bad dim");
  Ints sizes;
  if (arg.isInt()) {
    const int64_t each = arg.toInt(), size = x->shape()[dim];
    if (each <= 0) return c.error(StatusCode::kInvalidArgument, "split: size must be positive");
    for (int64_t done = 0; done < size; done += each) sizes.push_back(std::min(each, size - done));
  } else {
    TRY_ASSIGN(sizes, c.ints_input(1));
  }
  TRY_ASSIGN(ir::Node * node, c.emit_node(K::split, {x}, {{"axis", dim}, {"sizes", sizes}}));
  return bind_list(c, n, node);
}

Status reshape(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(Ints shape, c.ints_input(1));
  return bind(c, n, c.emit(K::reshape, {x}, {{"shape", shape}}));
}

Status flatten(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(int64_t start, c.int_input(1));
  TRY_ASSIGN(int64_t end, c.int_input(2));
  return bind(c, n, c.emit(K::flatten, {x}, {{"start_dim", start}, {"end_dim", end}}));
}

Status unsqueeze(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(int64_t dim, c.int_input(1));
  Ints shape = x->shape();
  if (dim < 0) dim += static_cast<int64_t>(shape.size()) + 1;
  if (dim < 0 || dim > static_cast<int64_t>(shape.size())) return c.error(StatusCode::kInvalidArgument, "unsqueeze: bad dim");
  shape.insert(shape.begin() + dim, 1);
  return bind(c, n, c.emit(K::reshape, {x}, {{"shape", shape}}));
}

Status squeeze(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  Ints shape;
  const Ints& in = x->shape();
  if (n->inputs().size() > 1) {
    TRY_ASSIGN(int64_t dim, c.int_input(1));
    dim = norm_dim(dim, in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      if (static_cast<int64_t>(i) != dim || in[i] != 1) shape.push_back(in[i]);
    }
  } else {
    for (int64_t d : in) {
      if (d != 1) shape.push_back(d);
    }
  }
  return bind(c, n, c.emit(K::reshape, {x}, {{"shape", shape}}));
}

Status transpose(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  int64_t a = 0, b = 1;
  if (n->inputs().size() > 1) {
    TRY_ASSIGN(a, c.int_input(1));
    TRY_ASSIGN(b, c.int_input(2));
  }
  return bind(c, n, c.emit(K::transpose, {x}, {{"dim0", a}, {"dim1", b}}));
}

Status permute(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(Ints perm, c.ints_input(1));
  return bind(c, n, c.emit(K::permute, {x}, {{"perm", perm}}));
}

Status slice(ImportContext& c, const jit::Node* n) {
  // aten::slice(x, dim, start, end, step)
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(int64_t dim, c.int_input(1));
  int64_t start = 0, end = INT64_MAX;
  if (!c.is_none(n->input(2))) {
    TRY_ASSIGN(start, c.int_input(2));
  }
  if (!c.is_none(n->input(3))) {
    TRY_ASSIGN(end, c.int_input(3));
  }
  TRY_ASSIGN(int64_t step, c.int_input(4));
  if (start == 0 && end >= INT64_MAX / 2 && step == 1) return bind(c, n, x);  // x[:] is a no-op
  return bind(c, n, c.emit(K::slice, {x}, {{"axis", dim}, {"start", start}, {"end", end}, {"step", step}}));
}

Status select(ImportContext& c, const jit::Node* n) {
  // aten::select(x, dim, index) = slice of one element, then drop the dim.
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(int64_t dim, c.int_input(1));
  TRY_ASSIGN(int64_t index, c.int_input(2));
  dim = norm_dim(dim, x->shape().size());
  if (dim < 0 || dim >= static_cast<int64_t>(x->shape().size())) return c.error(StatusCode::kInvalidArgument, "select: bad dim");
  const int64_t size = x->shape()[dim];
  if (index < 0) index += size;
  if (index < 0 || index >= size) return c.error(StatusCode::kInvalidArgument, "select: index out of range");
  TRY_ASSIGN(Value * one, c.emit(K::slice, {x}, {{"axis", dim}, {"start", index}, {"end", index + 1}, {"step", int64_t{1}}}));
  Ints shape = x->shape();
  shape.erase(shape.begin() + dim);
  return bind(c, n, c.emit(K::reshape, {one}, {{"shape", shape}}));
}

Status max_pool(ImportContext& c, const jit::Node* n) {
  // aten::max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
  TRY_ASSIGN(Ints kernel, c.ints_input(1));
  TRY_ASSIGN(Ints stride, c.ints_input(2));
  TRY_ASSIGN(Ints padding, c.ints_input(3));
  TRY_ASSIGN(Ints dilation, c.ints_input(4));
  TRY_ASSIGN(bool ceil_mode, c.bool_input(5));
  Ints padding_tlbr = padding4(padding);
  TRY_ASSIGN(Value * x, padded_input(c, n, -INFINITY, &padding_tlbr));
  if (stride.empty()) stride = kernel;
  return bind(c, n, c.emit(K::max_pool2d, {x},
                           {{"kernel", pair(kernel)}, {"stride", pair(stride)}, {"padding", padding_tlbr},
                            {"dilation", pair(dilation)}, {"ceil_mode", int64_t{ceil_mode}}}));
}

Status avg_pool(ImportContext& c, const jit::Node* n) {
  // aten::avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(Ints kernel, c.ints_input(1));
  TRY_ASSIGN(Ints stride, c.ints_input(2));
  TRY_ASSIGN(Ints padding, c.ints_input(3));
  TRY_ASSIGN(bool ceil_mode, c.bool_input(4));
  TRY_ASSIGN(bool include_pad, c.bool_input(5));
  if (n->inputs().size() > 6 && !c.is_none(n->input(6))) {
    return c.error(StatusCode::kUnsupported, "avg_pool2d divisor_override is not supported");
  }
  if (stride.empty()) stride = kernel;
  return bind(c, n, c.emit(K::avg_pool2d, {x},
                           {{"kernel", pair(kernel)}, {"stride", pair(stride)}, {"padding", padding4(padding)},
                            {"ceil_mode", int64_t{ceil_mode}}, {"count_include_pad", int64_t{include_pad}}}));
}

Status adaptive_pool_op(ImportContext& c, const jit::Node* n, ir::OpKind op) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(Ints size, c.ints_input(1));
  if (x->shape().size() != 4) return c.error(StatusCode::kUnsupported, "adaptive pooling needs NCHW input");
  Ints out = pair(size);
  // None entries (keep the input size) arrive as missing; fall back to input dims.
  TRY_ASSIGN(Value * y, c.emit(op, {x}, {{"output_size", out}}));
  c.bind_ir(n->output(0), y);
  if (n->outputs().size() > 1 && n->output(1)->hasUses()) {
    return c.error(StatusCode::kUnsupported, "pooling indices are not supported");
  }
  return Status::ok();
}

Status mean(ImportContext& c, const jit::Node* n) {
  // aten::mean(x, dims, keepdim, dtype)
  TRY_ASSIGN(Value * x, c.ir_input(0));
  Ints dims;
  bool keepdim = false;
  if (n->inputs().size() >= 3) {
    TRY_ASSIGN(dims, c.ints_input(1));
    TRY_ASSIGN(keepdim, c.bool_input(2));
  } else {
    for (size_t i = 0; i < x->shape().size(); ++i) dims.push_back(static_cast<int64_t>(i));
  }
  return bind(c, n, c.emit(K::reduce_mean, {x}, {{"axes", dims}, {"keepdim", int64_t{keepdim}}}));
}

Status softmax(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(int64_t dim, c.int_input(1));
  return bind(c, n, c.emit(K::softmax, {x}, {{"axis", dim}}));
}

Status embedding(ImportContext& c, const jit::Node* n) {
  // aten::embedding(weight, indices, padding_idx, scale_grad_by_freq, sparse)
  TRY_ASSIGN(Value * weight, c.ir_input(0));
  TRY_ASSIGN(Value * indices, c.ir_input(1));
  return bind(c, n, c.emit(K::embedding, {indices, weight}));
}

Status attention(ImportContext& c, const jit::Node* n) {
  // aten::scaled_dot_product_attention(q, k, v, mask, dropout_p, is_causal[, scale])
  TRY_ASSIGN(Value * q, c.ir_input(0));
  TRY_ASSIGN(Value * k, c.ir_input(1));
  TRY_ASSIGN(Value * v, c.ir_input(2));
  std::vector<Value*> inputs{q, k, v};
  if (!c.is_none(n->input(3))) {
    TRY_ASSIGN(Value * mask, c.ir_input(3));
    inputs.push_back(mask);
  }
  TRY_ASSIGN(bool causal, c.bool_input(5));
  double scale = 0.0;
  if (n->inputs().size() > 6 && !c.is_none(n->input(6))) {
    TRY_ASSIGN(scale, c.double_input(6));
  }
  return bind(c, n, c.emit(K::scaled_dot_product_attention, inputs, {{"is_causal", int64_t{causal}}, {"scale", scale}}));
}

// PyTorch's fused inference path for nn.TransformerEncoderLayer (taken when a
// model is traced in eval mode under no_grad), decomposed into op set v1:
//   aten::_transformer_encoder_layer_fwd(src, embed_dim, num_heads, qkv_w,
//   qkv_b, proj_w, proj_b, use_gelu, norm_first, eps, norm_w1, norm_b1,
//   norm_w2, norm_b2, ffn_w1, ffn_b1, ffn_w2, ffn_b2, mask, mask_type)
// src is [B, L, E] (batch_first).
Status transformer_encoder_layer(ImportContext& c, const jit::Node* n) {
  TRY_ASSIGN(Value * x, c.ir_input(0));
  TRY_ASSIGN(int64_t embed, c.int_input(1));
  TRY_ASSIGN(int64_t heads, c.int_input(2));
  TRY_ASSIGN(bool use_gelu, c.bool_input(7));
  TRY_ASSIGN(bool norm_first, c.bool_input(8));
  TRY_ASSIGN(double eps, c.double_input(9));
  if (n->inputs().size() > 18 && !c.is_none(n->input(18))) {
    return c.error(StatusCode::kUnsupported, "the fused encoder layer with an attention mask is not supported");
  }
  const ir::Shape& shape = x->shape();
  if (shape.size() != 3 || shape[2] != embed || heads <= 0 || embed % heads != 0) {
    return c.error(StatusCode::kUnsupported, "fused encoder layer: expected [batch, seq, embed] input");
  }
  const int64_t batch = shape[0], seq = shape[1], head_dim = embed / heads;
  std::vector<Value*> w(18, nullptr);
  for (size_t i : {3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 17}) {
    TRY_ASSIGN(w[i], c.ir_input(i));
  }
  auto norm = [&](Value* v, Value* weight, Value* bias) {
    return c.emit(K::layer_norm, {v, weight, bias}, {{"normalized_ndim", int64_t{1}}, {"eps", eps}});
  };
  auto attention_block = [&](Value* h) -> Expected<Value*> {
    TRY_ASSIGN(Value * qkv, c.emit(K::linear, {h, w[3], w[4]}));
    TRY_ASSIGN(ir::Node * parts, c.emit_node(K::split, {qkv}, {{"axis", int64_t{2}}, {"sizes", Ints{embed, embed, embed}}}));
    std::vector<Value*> qkv_heads;
    for (size_t i = 0; i < 3; ++i) {
      TRY_ASSIGN(Value * r, c.emit(K::reshape, {parts->output(i)}, {{"shape", Ints{batch, seq, heads, head_dim}}}));
      TRY_ASSIGN(Value * t, c.emit(K::permute, {r}, {{"perm", Ints{0, 2, 1, 3}}}));
      qkv_heads.push_back(t);
    }
    TRY_ASSIGN(Value * a, c.emit(K::scaled_dot_product_attention, qkv_heads));
    TRY_ASSIGN(Value * merged, c.emit(K::permute, {a}, {{"perm", Ints{0, 2, 1, 3}}}));
    TRY_ASSIGN(merged, c.emit(K::reshape, {merged}, {{"shape", Ints{batch, seq, embed}}}));
    return c.emit(K::linear, {merged, w[5], w[6]});
  };
  auto feed_forward = [&](Value* h) -> Expected<Value*> {
    TRY_ASSIGN(Value * up, c.emit(K::linear, {h, w[14], w[15]}));
    TRY_ASSIGN(up, use_gelu ? c.emit(K::gelu, {up}) : c.emit(K::relu, {up}));
    return c.emit(K::linear, {up, w[16], w[17]});
  };
  if (norm_first) {
    TRY_ASSIGN(Value * h, norm(x, w[10], w[11]));
    TRY_ASSIGN(Value * a, attention_block(h));
    TRY_ASSIGN(x, c.emit(K::add, {x, a}));
    TRY_ASSIGN(h, norm(x, w[12], w[13]));
    TRY_ASSIGN(Value * f, feed_forward(h));
    return bind(c, n, c.emit(K::add, {x, f}));
  }
  TRY_ASSIGN(Value * a, attention_block(x));
  TRY_ASSIGN(x, c.emit(K::add, {x, a}));
  TRY_ASSIGN(x, norm(x, w[10], w[11]));
  TRY_ASSIGN(Value * f, feed_forward(x));
  TRY_ASSIGN(x, c.emit(K::add, {x, f}));
  return bind(c, n, norm(x, w[12], w[13]));
}

Status convolution(ImportContext& c, const jit::Node* n) { return conv(c, n, /*full_signature=*/true); }
Status conv2d(ImportContext& c, const jit::Node* n) { return conv(c, n, /*full_signature=*/false); }

OpHandler unary(ir::OpKind op) {
  return [op](ImportContext& c, const jit::Node* n) -> Status {
    TRY_ASSIGN(Value * x, c.ir_input(0));
    return bind(c, n, c.emit(op, {x}));
  };
}

OpHandler binary(ir::OpKind op) {
  return [op](ImportContext& c, const jit::Node* n) { return binary_op(c, n, op); };
}

OpHandler adaptive_pool(ir::OpKind op) {
  return [op](ImportContext& c, const jit::Node* n) { return adaptive_pool_op(c, n, op); };
}

}  // namespace compress::torch::aten_import

namespace compress::torch {

std::vector<std::pair<std::string, OpHandler>> aten_decompositions() {
  using namespace aten_import;
  std::vector<std::pair<std::string, OpHandler>> t = {
      {"aten::addmm", addmm_like},
      {"aten::baddbmm", addmm_like},
      {"aten::select", select},
      // Padding for the conv or max pool that reads it (Known::Kind::kPadded).
      {"aten::constant_pad_nd", constant_pad},
      {"aten::_transformer_encoder_layer_fwd", transformer_encoder_layer},
  };
  // Identity at inference.
  for (const char* op : {"aten::dropout", "aten::feature_dropout", "aten::alpha_dropout", "aten::contiguous",
                         "aten::detach", "aten::clone"}) {
    t.emplace_back(op, passthrough);
  }
  return t;
}

}  // namespace compress::torch
