// Op set v1: one table entry per op (arity, attributes, type inference).
//
// Note [Op semantics]
// Each op follows the PyTorch operator of the same name unless stated
// otherwise; docs/ops.md lists the exact semantics. Shapes are static: graph
// inputs carry a concrete batch, and Graph::infer_types() re-runs inference
// when a caller changes it. Backends compute shapes from their actual inputs.
#include <algorithm>
#include <cmath>

#include "compress/ir/op_schema.h"
#include "compress/ir/sparse_layout.h"
#include "compress/support/check.h"

namespace compress::ir {
namespace {

using Types = std::vector<ValueType>;
constexpr StatusCode kBad = StatusCode::kInvalidArgument;

const int64_t& int_attr(const InferContext& c, const char* name) { return std::get<int64_t>(c.attrs.at(name)); }
const double& float_attr(const InferContext& c, const char* name) { return std::get<double>(c.attrs.at(name)); }
const std::string& string_attr(const InferContext& c, const char* name) {
  return std::get<std::string>(c.attrs.at(name));
}
const std::vector<int64_t>& ints_attr(const InferContext& c, const char* name) {
  return std::get<std::vector<int64_t>>(c.attrs.at(name));
}

ValueType plain(DType dtype, Shape shape) { return ValueType{dtype, std::move(shape), nullptr}; }

Status require_float(const InferContext& c, size_t i) {
  COMPRESS_CHECK(is_float(c.inputs[i]->dtype), kBad, "{}: input {} must be a float tensor, got {}", c.op, i,
                 dtype_name(c.inputs[i]->dtype));
  return Status::ok();
}

Status require_rank(const InferContext& c, size_t i, int64_t rank) {
  COMPRESS_CHECK(static_cast<int64_t>(c.inputs[i]->shape.size()) == rank, kBad,
                 "{}: input {} must have rank {}, got shape {}", c.op, i, rank, shape_to_string(c.inputs[i]->shape));
  return Status::ok();
}

Status require_quantized(const InferContext& c, size_t i) {
  const ValueType& t = *c.inputs[i];
  COMPRESS_CHECK(t.quant != nullptr && (t.dtype == DType::kI8 || t.dtype == DType::kU8), kBad,
                 "{}: input {} must be a quantized i8/u8 tensor, got {}", c.op, i, t.to_string());
  return Status::ok();
}

// Normalizes a possibly negative axis against a rank.
Expected<int64_t> normalize_axis(const InferContext& c, int64_t axis, int64_t rank) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  COMPRESS_CHECK(a >= 0 && a < rank, kBad, "{}: axis {} out of range for rank {}", c.op, axis, rank);
  return a;
}

Expected<Shape> broadcast(const InferContext& c, const Shape& a, const Shape& b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    COMPRESS_CHECK(da == db || da == 1 || db == 1, kBad, "{}: shapes {} and {} do not broadcast", c.op,
                   shape_to_string(a), shape_to_string(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---- elementwise ------------------------------------------------------------

Expected<Types> infer_unary(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  return Types{plain(c.inputs[0]->dtype, c.inputs[0]->shape)};
}

Expected<Types> infer_clamp(const InferContext& c) {
  COMPRESS_CHECK(float_attr(c, "min") <= float_attr(c, "max"), kBad, "clamp: min {} > max {}",
                 float_attr(c, "min"), float_attr(c, "max"));
  return infer_unary(c);
}

Expected<Types> infer_gelu(const InferContext& c) {
  const std::string& approx = string_attr(c, "approximate");
  COMPRESS_CHECK(approx == "none" || approx == "tanh", kBad, "gelu: approximate must be 'none' or 'tanh', got '{}'",
                 approx);
  return infer_unary(c);
}

Expected<Types> infer_binary(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  COMPRESS_CHECK(c.inputs[0]->dtype == c.inputs[1]->dtype, kBad, "{}: dtypes differ ({} vs {})", c.op,
                 dtype_name(c.inputs[0]->dtype), dtype_name(c.inputs[1]->dtype));
  COMPRESS_ASSIGN_OR_RETURN(Shape shape, broadcast(c, c.inputs[0]->shape, c.inputs[1]->shape));
  return Types{plain(c.inputs[0]->dtype, std::move(shape))};
}

// ---- conv / linear / matmul ------------------------------------------------

Expected<int64_t> window_output(const InferContext& c, int64_t in, int64_t kernel, int64_t stride, int64_t pad_lo,
                                int64_t pad_hi, int64_t dilation, bool ceil_mode) {
  COMPRESS_CHECK(kernel > 0 && stride > 0 && dilation > 0 && pad_lo >= 0 && pad_hi >= 0, kBad,
                 "{}: kernel {}, stride {}, dilation {} must be positive and padding {},{} non-negative", c.op, kernel,
                 stride, dilation, pad_lo, pad_hi);
  // Attributes come from files too: keep every term far from int64 overflow.
  constexpr int64_t kLimit = int64_t{1} << 40;
  COMPRESS_CHECK(in < kLimit && kernel < kLimit && stride < kLimit && dilation < kLimit && pad_lo < kLimit &&
                     pad_hi < kLimit && dilation * (kernel - 1) < kLimit,
                 kBad, "{}: window attributes are out of range", c.op);
  const int64_t span = in + pad_lo + pad_hi - dilation * (kernel - 1) - 1;
  COMPRESS_CHECK(span >= 0, kBad, "{}: kernel {} (dilation {}) larger than padded input {}", c.op, kernel, dilation,
                 in + pad_lo + pad_hi);
  int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  // PyTorch rule: with ceil_mode, the last window must start inside the input or left padding.
  if (ceil_mode && (out - 1) * stride >= in + pad_lo) --out;
  return out;
}

Status check_pair(const InferContext& c, const char* name, size_t size) {
  COMPRESS_CHECK(ints_attr(c, name).size() == size, kBad, "{}: attribute '{}' needs {} values, got {}", c.op, name,
                 size, ints_attr(c, name).size());
  return Status::ok();
}

// Shared by conv2d and qconv2d: x [N,C,H,W], w [O,C/groups,kh,kw], bias [O].
Expected<Shape> conv_output_shape(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_rank(c, 0, 4));
  COMPRESS_RETURN_IF_ERROR(require_rank(c, 1, 4));
  for (const char* name : {"stride", "dilation"}) COMPRESS_RETURN_IF_ERROR(check_pair(c, name, 2));
  COMPRESS_RETURN_IF_ERROR(check_pair(c, "padding", 4));
  const Shape& x = c.inputs[0]->shape;
  const Shape& w = c.inputs[1]->shape;
  const int64_t groups = int_attr(c, "groups");
  COMPRESS_CHECK(groups >= 1, kBad, "{}: groups must be >= 1, got {}", c.op, groups);
  COMPRESS_CHECK(x[1] % groups == 0 && w[0] % groups == 0, kBad,
                 "{}: input channels {} and output channels {} must be divisible by groups {}", c.op, x[1], w[0],
                 groups);
  COMPRESS_CHECK(w[1] * groups == x[1], kBad,
                 "{}: weight {} expects {} input channels per group ({} total), input has {}", c.op,
                 shape_to_string(w), w[1], w[1] * groups, x[1]);
  if (c.inputs.size() > 2) {
    COMPRESS_CHECK(c.inputs[2]->shape == Shape{w[0]}, kBad, "{}: bias shape {} must be [{}]", c.op,
                   shape_to_string(c.inputs[2]->shape), w[0]);
  }
  const auto& stride = ints_attr(c, "stride");
  const auto& pad = ints_attr(c, "padding");
  const auto& dil = ints_attr(c, "dilation");
  COMPRESS_ASSIGN_OR_RETURN(int64_t h, window_output(c, x[2], w[2], stride[0], pad[0], pad[2], dil[0], false));
  COMPRESS_ASSIGN_OR_RETURN(int64_t wo, window_output(c, x[3], w[3], stride[1], pad[1], pad[3], dil[1], false));
  return Shape{x[0], w[0], h, wo};
}

Expected<Types> infer_conv2d(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  COMPRESS_RETURN_IF_ERROR(require_float(c, 1));
  COMPRESS_ASSIGN_OR_RETURN(Shape shape, conv_output_shape(c));
  return Types{plain(c.inputs[0]->dtype, std::move(shape))};
}

Expected<Shape> linear_output_shape(const InferContext& c) {
  const Shape& x = c.inputs[0]->shape;
  COMPRESS_CHECK(!x.empty(), kBad, "{}: input must have rank >= 1", c.op);
  COMPRESS_RETURN_IF_ERROR(require_rank(c, 1, 2));
  const Shape& w = c.inputs[1]->shape;
  COMPRESS_CHECK(w[1] == x.back(), kBad, "{}: weight {} expects {} input features, input {} has {}", c.op,
                 shape_to_string(w), w[1], shape_to_string(x), x.back());
  if (c.inputs.size() > 2) {
    COMPRESS_CHECK(c.inputs[2]->shape == Shape{w[0]}, kBad, "{}: bias shape {} must be [{}]", c.op,
                   shape_to_string(c.inputs[2]->shape), w[0]);
  }
  Shape out = x;
  out.back() = w[0];
  return out;
}

Expected<Types> infer_linear(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  COMPRESS_RETURN_IF_ERROR(require_float(c, 1));
  COMPRESS_ASSIGN_OR_RETURN(Shape shape, linear_output_shape(c));
  return Types{plain(c.inputs[0]->dtype, std::move(shape))};
}

// torch.matmul: 1-D operands are promoted and the added dim removed again;
// batch dims broadcast.
Expected<Shape> matmul_output_shape(const InferContext& c) {
  Shape a = c.inputs[0]->shape;
  Shape b = c.inputs[1]->shape;
  COMPRESS_CHECK(!a.empty() && !b.empty(), kBad, "{}: operands must have rank >= 1", c.op);
  const bool a_vec = a.size() == 1, b_vec = b.size() == 1;
  if (a_vec) a.insert(a.begin(), 1);
  if (b_vec) b.push_back(1);
  COMPRESS_CHECK(a.back() == b[b.size() - 2], kBad, "{}: inner dims differ: {} x {}", c.op,
                 shape_to_string(c.inputs[0]->shape), shape_to_string(c.inputs[1]->shape));
  COMPRESS_ASSIGN_OR_RETURN(Shape batch,
                            broadcast(c, Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2)));
  Shape out = batch;
  if (!a_vec) out.push_back(a[a.size() - 2]);
  if (!b_vec) out.push_back(b.back());
  return out;
}

Expected<Types> infer_matmul(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  COMPRESS_RETURN_IF_ERROR(require_float(c, 1));
  COMPRESS_ASSIGN_OR_RETURN(Shape shape, matmul_output_shape(c));
  return Types{plain(c.inputs[0]->dtype, std::move(shape))};
}

// Output type of the quantized compute ops: f32, or i8/u8 with per-tensor params.
Expected<ValueType> quantized_output_type(const InferContext& c, Shape shape) {
  const std::string& out = string_attr(c, "out_dtype");
  if (out == "f32") return plain(DType::kF32, std::move(shape));
  const auto dtype = dtype_from_name(out);
  COMPRESS_CHECK(dtype == DType::kI8 || dtype == DType::kU8, kBad, "{}: out_dtype must be f32, i8 or u8, got '{}'",
                 c.op, out);
  // out_qmin/out_qmax (both 0: the dtype's range) narrow the output range,
  // e.g. to [0, 15] for a 4-bit activation held in u8 (Note [Narrow
  // activation ranges], docs/ops.md).
  QuantParams::Spec spec;
  spec.storage = *dtype;
  spec.granularity = QuantGranularity::kPerTensor;
  spec.scales = {static_cast<float>(float_attr(c, "out_scale"))};
  spec.zero_points = {static_cast<int32_t>(int_attr(c, "out_zero_point"))};
  if (int_attr(c, "out_qmin") != 0 || int_attr(c, "out_qmax") != 0) {
    spec.qmin = int_attr(c, "out_qmin");
    spec.qmax = int_attr(c, "out_qmax");
  }
  COMPRESS_ASSIGN_OR_RETURN(QuantParams params, QuantParams::create(std::move(spec)));
  return ValueType{*dtype, std::move(shape), std::make_shared<const QuantParams>(std::move(params))};
}

Status check_quantized_operands(const InferContext& c, bool weight_is_constant_layout) {
  COMPRESS_RETURN_IF_ERROR(require_quantized(c, 0));
  // A layer's weight may be i4 (4-bit QAT stores it packed): a 4-bit value
  // is an s8 value, and the backends unpack it once.
  const ValueType& w = *c.inputs[1];
  if (!(weight_is_constant_layout && w.quant != nullptr && w.dtype == DType::kI4)) {
    COMPRESS_RETURN_IF_ERROR(require_quantized(c, 1));
  }
  COMPRESS_CHECK(c.inputs[0]->quant->granularity() == QuantGranularity::kPerTensor, kBad,
                 "{}: activation input must be quantized per tensor", c.op);
  const QuantParams& wq = *c.inputs[1]->quant;
  if (weight_is_constant_layout) {
    COMPRESS_CHECK(wq.granularity() == QuantGranularity::kPerTensor ||
                       (wq.granularity() == QuantGranularity::kPerAxis && wq.axis() == 0),
                   kBad, "{}: weight must be quantized per tensor or per output channel (axis 0)", c.op);
  } else {
    COMPRESS_CHECK(wq.granularity() == QuantGranularity::kPerTensor, kBad,
                   "{}: second operand must be quantized per tensor", c.op);
  }
  if (c.inputs.size() > 2) {
    const ValueType& bias = *c.inputs[2];
    COMPRESS_CHECK(bias.dtype == DType::kF32 || bias.dtype == DType::kI32, kBad,
                   "{}: bias must be f32 or i32 (accumulator scale), got {}", c.op, dtype_name(bias.dtype));
  }
  return Status::ok();
}

Expected<Types> infer_qconv2d(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(check_quantized_operands(c, true));
  COMPRESS_ASSIGN_OR_RETURN(Shape shape, conv_output_shape(c));
  COMPRESS_ASSIGN_OR_RETURN(ValueType out, quantized_output_type(c, std::move(shape)));
  return Types{std::move(out)};
}

Expected<Types> infer_qlinear(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(check_quantized_operands(c, true));
  COMPRESS_ASSIGN_OR_RETURN(Shape shape, linear_output_shape(c));
  COMPRESS_ASSIGN_OR_RETURN(ValueType out, quantized_output_type(c, std::move(shape)));
  return Types{std::move(out)};
}

Expected<Types> infer_qmatmul(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(check_quantized_operands(c, false));
  COMPRESS_ASSIGN_OR_RETURN(Shape shape, matmul_output_shape(c));
  COMPRESS_ASSIGN_OR_RETURN(ValueType out, quantized_output_type(c, std::move(shape)));
  return Types{std::move(out)};
}

// qadd(a, b): two i8/u8 per-tensor operands of one shape (no broadcasting).
Expected<Types> infer_qadd(const InferContext& c) {
  for (size_t i = 0; i < 2; ++i) {
    COMPRESS_RETURN_IF_ERROR(require_quantized(c, i));
    COMPRESS_CHECK(c.inputs[i]->quant->granularity() == QuantGranularity::kPerTensor, kBad,
                   "{}: input {} must be quantized per tensor", c.op, i);
  }
  COMPRESS_CHECK(c.inputs[0]->shape == c.inputs[1]->shape, kBad, "{}: operand shapes {} and {} differ (no broadcasting)",
                 c.op, shape_to_string(c.inputs[0]->shape), shape_to_string(c.inputs[1]->shape));
  COMPRESS_ASSIGN_OR_RETURN(ValueType out, quantized_output_type(c, c.inputs[0]->shape));
  return Types{std::move(out)};
}

// ---- normalization ---------------------------------------------------------

Expected<Types> infer_batch_norm(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  const Shape& x = c.inputs[0]->shape;
  COMPRESS_CHECK(x.size() >= 2, kBad, "batch_norm: input must have rank >= 2, got {}", shape_to_string(x));
  for (size_t i = 1; i < 5; ++i) {
    COMPRESS_CHECK(c.inputs[i]->shape == Shape{x[1]}, kBad,
                   "batch_norm: input {} (weight, bias, running_mean, running_var) has shape {}, expected [{}]", i,
                   shape_to_string(c.inputs[i]->shape), x[1]);
  }
  COMPRESS_CHECK(float_attr(c, "eps") > 0, kBad, "batch_norm: eps must be > 0");
  return Types{plain(c.inputs[0]->dtype, x)};
}

// layer_norm and rms_norm: normalized over the last normalized_ndim dims, with
// optional per-element parameters of that shape.
Expected<Types> infer_trailing_norm(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  const Shape& x = c.inputs[0]->shape;
  const int64_t k = int_attr(c, "normalized_ndim");
  COMPRESS_CHECK(k >= 1 && k <= static_cast<int64_t>(x.size()), kBad, "{}: normalized_ndim {} out of range for input {}",
                 c.op, k, shape_to_string(x));
  const Shape normalized(x.end() - k, x.end());
  for (size_t i = 1; i < c.inputs.size(); ++i) {
    COMPRESS_CHECK(c.inputs[i]->shape == normalized, kBad, "{}: input {} has shape {}, expected {}", c.op, i,
                   shape_to_string(c.inputs[i]->shape), shape_to_string(normalized));
  }
  COMPRESS_CHECK(float_attr(c, "eps") > 0, kBad, "{}: eps must be > 0", c.op);
  return Types{plain(c.inputs[0]->dtype, x)};
}

Expected<Types> infer_softmax(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  COMPRESS_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(c, int_attr(c, "axis"), c.inputs[0]->shape.size()));
  (void)axis;
  return Types{plain(c.inputs[0]->dtype, c.inputs[0]->shape)};
}

// ---- shape ops ---------------------------------------------------------------

// Note [Quant params through shape ops]
// Data-movement ops keep a quantized value quantized. Per-tensor params pass
// through unchanged; per-axis/per-group params follow their axis through
// permute/transpose and survive slice/split/concat along another axis. Ops
// that would mix channels of a per-axis tensor (reshape/flatten across the
// axis, concat/split/slice along it) are rejected: dequantize first.
Expected<std::shared_ptr<const QuantParams>> moved_quant(const InferContext& c, const ValueType& x,
                                                         int64_t new_axis) {
  if (!x.quant || x.quant->granularity() == QuantGranularity::kPerTensor) return x.quant;
  COMPRESS_CHECK(new_axis >= 0, kBad, "{}: would mix the channels of a per-axis quantized tensor {}; dequantize first",
                 c.op, x.to_string());
  if (new_axis == x.quant->axis()) return x.quant;
  QuantParams::Spec spec{x.quant->storage(), x.quant->granularity(), new_axis, x.quant->group_size(),
                         x.quant->scales(), x.quant->zero_points(), x.quant->qmin(), x.quant->qmax()};
  COMPRESS_ASSIGN_OR_RETURN(QuantParams moved, QuantParams::create(std::move(spec)));
  return std::make_shared<const QuantParams>(std::move(moved));
}

// The quant axis after an op that changes dims outside `axis` only, or -1
// when `axis` is the quantized axis itself.
int64_t axis_unless_touched(const ValueType& x, int64_t axis) {
  if (!x.quant || x.quant->granularity() == QuantGranularity::kPerTensor) return 0;
  return x.quant->axis() == axis ? -1 : x.quant->axis();
}

Expected<Types> infer_concat(const InferContext& c) {
  const ValueType& first = *c.inputs[0];
  COMPRESS_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(c, int_attr(c, "axis"), first.shape.size()));
  Shape out = first.shape;
  for (size_t i = 1; i < c.inputs.size(); ++i) {
    const ValueType& t = *c.inputs[i];
    COMPRESS_CHECK(t.dtype == first.dtype && t.shape.size() == first.shape.size(), kBad,
                   "concat: input {} is {}, input 0 is {}", i, t.to_string(), first.to_string());
    COMPRESS_CHECK((t.quant == nullptr) == (first.quant == nullptr) && (!t.quant || *t.quant == *first.quant), kBad,
                   "concat: input {} is quantized differently from input 0 ({} vs {}); requantize first", i,
                   t.to_string(), first.to_string());
    for (size_t d = 0; d < out.size(); ++d) {
      if (static_cast<int64_t>(d) == axis) continue;
      COMPRESS_CHECK(t.shape[d] == first.shape[d], kBad, "concat: input {} shape {} differs from {} outside axis {}",
                     i, shape_to_string(t.shape), shape_to_string(first.shape), axis);
    }
    out[axis] += t.shape[axis];
  }
  COMPRESS_ASSIGN_OR_RETURN(auto quant, moved_quant(c, first, axis_unless_touched(first, axis)));
  return Types{ValueType{first.dtype, std::move(out), quant}};
}

Expected<Types> infer_split(const InferContext& c) {
  const ValueType& x = *c.inputs[0];
  COMPRESS_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(c, int_attr(c, "axis"), x.shape.size()));
  const auto& sizes = ints_attr(c, "sizes");
  COMPRESS_CHECK(!sizes.empty(), kBad, "split: 'sizes' must not be empty");
  COMPRESS_ASSIGN_OR_RETURN(auto quant, moved_quant(c, x, axis_unless_touched(x, axis)));
  int64_t total = 0;
  Types outs;
  for (int64_t s : sizes) {
    COMPRESS_CHECK(s >= 0, kBad, "split: negative size {}", s);
    total += s;
    Shape shape = x.shape;
    shape[axis] = s;
    outs.push_back(ValueType{x.dtype, std::move(shape), quant});
  }
  COMPRESS_CHECK(total == x.shape[axis], kBad, "split: sizes sum to {}, axis {} has {}", total, axis, x.shape[axis]);
  return outs;
}

Expected<Types> infer_slice(const InferContext& c) {
  const ValueType& x = *c.inputs[0];
  COMPRESS_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(c, int_attr(c, "axis"), x.shape.size()));
  const int64_t dim = x.shape[axis];
  const int64_t step = int_attr(c, "step");
  COMPRESS_CHECK(step >= 1, kBad, "slice: step must be >= 1, got {}", step);
  int64_t start = int_attr(c, "start"), end = int_attr(c, "end");
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  start = std::clamp<int64_t>(start, 0, dim);
  end = std::clamp<int64_t>(end, 0, dim);
  Shape out = x.shape;
  out[axis] = end > start ? (end - start + step - 1) / step : 0;
  COMPRESS_ASSIGN_OR_RETURN(auto quant, moved_quant(c, x, axis_unless_touched(x, axis)));
  return Types{ValueType{x.dtype, std::move(out), quant}};
}

Expected<Types> infer_reshape(const InferContext& c) {
  const ValueType& x = *c.inputs[0];
  Shape out = ints_attr(c, "shape");
  const auto in_count = checked_numel(x.shape);
  COMPRESS_CHECK(in_count.has_value(), kBad, "reshape: bad input shape {}", shape_to_string(x.shape));
  int64_t known = 1;
  int infer_at = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      COMPRESS_CHECK(infer_at < 0, kBad, "reshape: more than one -1 in shape {}", shape_to_string(out));
      infer_at = static_cast<int>(i);
      continue;
    }
    COMPRESS_CHECK(out[i] >= 0, kBad, "reshape: invalid dim {} in {}", out[i], shape_to_string(out));
    COMPRESS_CHECK(out[i] == 0 || known <= INT64_MAX / out[i], kBad, "reshape: shape {} overflows",
                   shape_to_string(out));
    known *= out[i];
  }
  if (infer_at >= 0) {
    COMPRESS_CHECK(known != 0 && *in_count % known == 0, kBad, "reshape: cannot reshape {} into {}",
                   shape_to_string(x.shape), shape_to_string(out));
    out[infer_at] = *in_count / known;
  }
  COMPRESS_CHECK(checked_numel(out) == in_count, kBad, "reshape: cannot reshape {} ({} elements) into {}",
                 shape_to_string(x.shape), *in_count, shape_to_string(out));
  COMPRESS_ASSIGN_OR_RETURN(auto quant, moved_quant(c, x, -1));
  return Types{ValueType{x.dtype, std::move(out), quant}};
}

Expected<Types> infer_flatten(const InferContext& c) {
  const ValueType& x = *c.inputs[0];
  const int64_t rank = std::max<int64_t>(1, x.shape.size());
  COMPRESS_ASSIGN_OR_RETURN(int64_t start, normalize_axis(c, int_attr(c, "start_dim"), rank));
  COMPRESS_ASSIGN_OR_RETURN(int64_t end, normalize_axis(c, int_attr(c, "end_dim"), rank));
  COMPRESS_CHECK(start <= end, kBad, "flatten: start_dim {} > end_dim {}", start, end);
  COMPRESS_ASSIGN_OR_RETURN(auto quant, moved_quant(c, x, -1));
  if (x.shape.empty()) return Types{ValueType{x.dtype, Shape{1}, quant}};
  Shape out(x.shape.begin(), x.shape.begin() + start);
  int64_t merged = 1;
  for (int64_t d = start; d <= end; ++d) merged *= x.shape[d];
  out.push_back(merged);
  out.insert(out.end(), x.shape.begin() + end + 1, x.shape.end());
  return Types{ValueType{x.dtype, std::move(out), quant}};
}

Expected<Types> infer_permute(const InferContext& c) {
  const ValueType& x = *c.inputs[0];
  const auto& perm = ints_attr(c, "perm");
  COMPRESS_CHECK(perm.size() == x.shape.size(), kBad, "permute: perm has {} entries, input has rank {}", perm.size(),
                 x.shape.size());
  std::vector<bool> seen(perm.size(), false);
  Shape out(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    COMPRESS_ASSIGN_OR_RETURN(int64_t p, normalize_axis(c, perm[i], perm.size()));
    COMPRESS_CHECK(!seen[p], kBad, "permute: axis {} appears twice", p);
    seen[p] = true;
    out[i] = x.shape[p];
  }
  int64_t new_axis = 0;
  if (x.quant && x.quant->granularity() != QuantGranularity::kPerTensor) {
    for (size_t i = 0; i < perm.size(); ++i) {
      if ((perm[i] < 0 ? perm[i] + static_cast<int64_t>(perm.size()) : perm[i]) == x.quant->axis()) new_axis = i;
    }
  }
  COMPRESS_ASSIGN_OR_RETURN(auto quant, moved_quant(c, x, new_axis));
  return Types{ValueType{x.dtype, std::move(out), quant}};
}

Expected<Types> infer_transpose(const InferContext& c) {
  const ValueType& x = *c.inputs[0];
  const int64_t rank = x.shape.size();
  COMPRESS_ASSIGN_OR_RETURN(int64_t a, normalize_axis(c, int_attr(c, "dim0"), rank));
  COMPRESS_ASSIGN_OR_RETURN(int64_t b, normalize_axis(c, int_attr(c, "dim1"), rank));
  Shape out = x.shape;
  std::swap(out[a], out[b]);
  int64_t new_axis = 0;
  if (x.quant && x.quant->granularity() != QuantGranularity::kPerTensor) {
    const int64_t q = x.quant->axis();
    new_axis = q == a ? b : q == b ? a : q;
  }
  COMPRESS_ASSIGN_OR_RETURN(auto quant, moved_quant(c, x, new_axis));
  return Types{ValueType{x.dtype, std::move(out), quant}};
}

// ---- pooling ---------------------------------------------------------------

Expected<Types> infer_pool2d(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_rank(c, 0, 4));
  for (const char* name : {"kernel", "stride"}) COMPRESS_RETURN_IF_ERROR(check_pair(c, name, 2));
  COMPRESS_RETURN_IF_ERROR(check_pair(c, "padding", 4));
  const auto& k = ints_attr(c, "kernel");
  const auto& s = ints_attr(c, "stride");
  const auto& p = ints_attr(c, "padding");
  const bool ceil_mode = int_attr(c, "ceil_mode") != 0;
  int64_t dil_h = 1, dil_w = 1;
  if (c.attrs.count("dilation")) {
    COMPRESS_RETURN_IF_ERROR(check_pair(c, "dilation", 2));
    dil_h = ints_attr(c, "dilation")[0];
    dil_w = ints_attr(c, "dilation")[1];
  }
  for (int i = 0; i < 2; ++i) {
    COMPRESS_CHECK(p[i] <= k[i] / 2 && p[i + 2] <= k[i] / 2, kBad,
                   "{}: padding {} must be at most half the kernel {}", c.op, shape_to_string(p), shape_to_string(k));
  }
  const Shape& x = c.inputs[0]->shape;
  COMPRESS_ASSIGN_OR_RETURN(int64_t h, window_output(c, x[2], k[0], s[0], p[0], p[2], dil_h, ceil_mode));
  COMPRESS_ASSIGN_OR_RETURN(int64_t w, window_output(c, x[3], k[1], s[1], p[1], p[3], dil_w, ceil_mode));
  // max_pool2d also takes quantized values and keeps their params: max
  // commutes with dequantizing (Note [Max pooling on quantized values],
  // runtime/reference/pooling.cpp). Per-axis params only along the channels.
  const ValueType& in = *c.inputs[0];
  if (c.op == "max_pool2d" && in.quant != nullptr) {
    COMPRESS_RETURN_IF_ERROR(require_quantized(c, 0));
    COMPRESS_CHECK(in.quant->granularity() == QuantGranularity::kPerTensor ||
                       (in.quant->granularity() == QuantGranularity::kPerAxis && in.quant->axis() == 1),
                   kBad, "{}: quantized input {} needs per-tensor or per-channel (axis 1) params", c.op,
                   in.to_string());
    return Types{ValueType{in.dtype, Shape{x[0], x[1], h, w}, in.quant}};
  }
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  return Types{plain(c.inputs[0]->dtype, Shape{x[0], x[1], h, w})};
}

Expected<Types> infer_adaptive_pool2d(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_rank(c, 0, 4));
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  COMPRESS_RETURN_IF_ERROR(check_pair(c, "output_size", 2));
  const auto& o = ints_attr(c, "output_size");
  COMPRESS_CHECK(o[0] > 0 && o[1] > 0, kBad, "{}: output_size must be positive", c.op);
  const Shape& x = c.inputs[0]->shape;
  return Types{plain(c.inputs[0]->dtype, Shape{x[0], x[1], o[0], o[1]})};
}

Expected<Types> infer_reduce_mean(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  const Shape& x = c.inputs[0]->shape;
  const bool keepdim = int_attr(c, "keepdim") != 0;
  COMPRESS_CHECK(!ints_attr(c, "axes").empty(), kBad, "reduce_mean: 'axes' must name at least one axis");
  std::vector<bool> reduce(x.size(), false);
  for (int64_t a : ints_attr(c, "axes")) {
    COMPRESS_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(c, a, x.size()));
    reduce[axis] = true;
  }
  Shape out;
  for (size_t d = 0; d < x.size(); ++d) {
    if (!reduce[d]) out.push_back(x[d]);
    else if (keepdim) out.push_back(1);
  }
  return Types{plain(c.inputs[0]->dtype, std::move(out))};
}

// ---- transformer ops ---------------------------------------------------------

Expected<Types> infer_embedding(const InferContext& c) {
  const ValueType& indices = *c.inputs[0];
  COMPRESS_CHECK(indices.dtype == DType::kI64 || indices.dtype == DType::kI32, kBad,
                 "embedding: indices must be i64 or i32, got {}", dtype_name(indices.dtype));
  COMPRESS_RETURN_IF_ERROR(require_rank(c, 1, 2));
  COMPRESS_RETURN_IF_ERROR(require_float(c, 1));
  Shape out = indices.shape;
  out.push_back(c.inputs[1]->shape[1]);
  return Types{plain(c.inputs[1]->dtype, std::move(out))};
}

// q [..., L, E], k [..., S, E], v [..., S, Ev], optional mask broadcastable to
// [..., L, S] (bool: true = attend; float: added to the scores).
Expected<Types> infer_attention(const InferContext& c) {
  for (size_t i = 0; i < 3; ++i) {
    COMPRESS_RETURN_IF_ERROR(require_float(c, i));
    COMPRESS_CHECK(c.inputs[i]->shape.size() >= 2, kBad, "scaled_dot_product_attention: input {} needs rank >= 2", i);
  }
  const Shape& q = c.inputs[0]->shape;
  const Shape& k = c.inputs[1]->shape;
  const Shape& v = c.inputs[2]->shape;
  COMPRESS_CHECK(q.back() == k.back(), kBad, "scaled_dot_product_attention: q {} and k {} embed dims differ",
                 shape_to_string(q), shape_to_string(k));
  COMPRESS_CHECK(k[k.size() - 2] == v[v.size() - 2], kBad,
                 "scaled_dot_product_attention: k {} and v {} sequence lengths differ", shape_to_string(k),
                 shape_to_string(v));
  COMPRESS_ASSIGN_OR_RETURN(Shape batch, broadcast(c, Shape(q.begin(), q.end() - 2), Shape(k.begin(), k.end() - 2)));
  COMPRESS_ASSIGN_OR_RETURN(batch, broadcast(c, batch, Shape(v.begin(), v.end() - 2)));
  if (c.inputs.size() > 3) {
    const ValueType& mask = *c.inputs[3];
    COMPRESS_CHECK(mask.dtype == DType::kBool || is_float(mask.dtype), kBad,
                   "scaled_dot_product_attention: mask must be bool or float, got {}", dtype_name(mask.dtype));
    Shape scores = batch;
    scores.push_back(q[q.size() - 2]);
    scores.push_back(k[k.size() - 2]);
    COMPRESS_ASSIGN_OR_RETURN(Shape b, broadcast(c, scores, mask.shape));
    COMPRESS_CHECK(b == scores, kBad, "scaled_dot_product_attention: mask {} does not broadcast to scores {}",
                   shape_to_string(mask.shape), shape_to_string(scores));
  }
  COMPRESS_CHECK(float_attr(c, "scale") >= 0, kBad, "scaled_dot_product_attention: scale must be >= 0 (0 = 1/sqrt(E))");
  Shape out = batch;
  out.push_back(q[q.size() - 2]);
  out.push_back(v.back());
  return Types{plain(c.inputs[0]->dtype, std::move(out))};
}

// ---- quantization ------------------------------------------------------------

// Builds QuantParams from quantize/fake_quant attributes for an input shape.
Expected<QuantParams> params_from_attrs(const InferContext& c, const Shape& shape) {
  const auto dtype = dtype_from_name(string_attr(c, "dtype"));
  COMPRESS_CHECK(dtype.has_value(), kBad, "{}: unknown dtype '{}'", c.op, string_attr(c, "dtype"));
  QuantParams::Spec spec;
  spec.storage = *dtype;
  const auto& scales = std::get<std::vector<double>>(c.attrs.at("scale"));
  for (double s : scales) spec.scales.push_back(static_cast<float>(s));
  for (int64_t z : ints_attr(c, "zero_point")) {
    COMPRESS_CHECK(z >= INT32_MIN && z <= INT32_MAX, kBad, "{}: zero point {} out of range", c.op, z);
    spec.zero_points.push_back(static_cast<int32_t>(z));
  }
  const int64_t group = int_attr(c, "group_size");
  if (group > 0) {
    spec.granularity = QuantGranularity::kPerGroup;
    spec.group_size = group;
  } else if (scales.size() != 1 || int_attr(c, "axis") != -1) {
    spec.granularity = QuantGranularity::kPerAxis;
  }
  if (spec.granularity != QuantGranularity::kPerTensor) {
    COMPRESS_ASSIGN_OR_RETURN(spec.axis, normalize_axis(c, int_attr(c, "axis"), shape.size()));
  }
  if (int_attr(c, "qmin") != 0 || int_attr(c, "qmax") != 0) {
    spec.qmin = int_attr(c, "qmin");
    spec.qmax = int_attr(c, "qmax");
  }
  COMPRESS_ASSIGN_OR_RETURN(QuantParams params, QuantParams::create(std::move(spec)));
  COMPRESS_RETURN_IF_ERROR(params.check_shape(shape));
  return params;
}

Expected<Types> infer_quantize(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  COMPRESS_ASSIGN_OR_RETURN(QuantParams params, params_from_attrs(c, c.inputs[0]->shape));
  const DType storage = params.storage();
  return Types{ValueType{storage, c.inputs[0]->shape, std::make_shared<const QuantParams>(std::move(params))}};
}

Expected<Types> infer_fake_quant(const InferContext& c) {
  COMPRESS_RETURN_IF_ERROR(require_float(c, 0));
  COMPRESS_ASSIGN_OR_RETURN(QuantParams params, params_from_attrs(c, c.inputs[0]->shape));
  (void)params;
  return Types{plain(c.inputs[0]->dtype, c.inputs[0]->shape)};
}

Expected<Types> infer_dequantize(const InferContext& c) {
  COMPRESS_CHECK(c.inputs[0]->quant != nullptr, kBad, "dequantize: input {} is not quantized", c.inputs[0]->to_string());
  return Types{plain(DType::kF32, c.inputs[0]->shape)};
}

// ---- the table ----------------------------------------------------------------

Attribute ints(std::initializer_list<int64_t> v) { return std::vector<int64_t>(v); }

std::vector<OpSchema> build_table() {
  const AttrSpec stride{"stride", AttrKind::kInts, false, ints({1, 1})};
  const AttrSpec padding4{"padding", AttrKind::kInts, false, ints({0, 0, 0, 0})};
  const AttrSpec dilation{"dilation", AttrKind::kInts, false, ints({1, 1})};
  const AttrSpec groups{"groups", AttrKind::kInt, false, int64_t{1}};
  const std::vector<AttrSpec> quant_out = {{"out_dtype", AttrKind::kString, false, std::string("f32")},
                                           {"out_scale", AttrKind::kFloat, false, 1.0},
                                           {"out_zero_point", AttrKind::kInt, false, int64_t{0}},
                                           {"out_qmin", AttrKind::kInt, false, int64_t{0}},
                                           {"out_qmax", AttrKind::kInt, false, int64_t{0}}};
  const std::vector<AttrSpec> quant_attrs = {
      {"dtype", AttrKind::kString, false, std::string("i8")}, {"scale", AttrKind::kFloats, true, Attribute{}},
      {"zero_point", AttrKind::kInts, false, ints({})},       {"axis", AttrKind::kInt, false, int64_t{-1}},
      {"group_size", AttrKind::kInt, false, int64_t{0}},      {"qmin", AttrKind::kInt, false, int64_t{0}},
      {"qmax", AttrKind::kInt, false, int64_t{0}}};
  auto concat = [](std::vector<AttrSpec> a, const std::vector<AttrSpec>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const std::vector<AttrSpec> conv_attrs = {stride, padding4, dilation, groups};
  const std::vector<AttrSpec> pool_attrs = {{"kernel", AttrKind::kInts, true, Attribute{}},
                                            {"stride", AttrKind::kInts, true, Attribute{}},
                                            padding4,
                                            {"ceil_mode", AttrKind::kInt, false, int64_t{0}}};

  std::vector<OpSchema> t;
  auto add = [&t](OpSchema schema) -> OpSchema& {
    t.push_back(std::move(schema));
    return t.back();
  };
  using C = CostRule;
  using F = ChannelFlow;
  // Weighted layers: {weight input, bias input, weight rank, output-channel axis, quantized}.
  const WeightedLayerSpec conv_layer{1, 2, 4, 0, false}, linear_layer{1, 2, 2, 0, false}, matmul_layer{1, -1, 2, 1, false};
  auto quantized = [](WeightedLayerSpec spec) {
    spec.quantized = true;
    return spec;
  };
  add({"conv2d", 2, 3, conv_attrs, infer_conv2d, "2-D convolution, NCHW; weight [O, C/groups, kh, kw]", conv_layer})
      .with_cost(C::kConv)
      .with_channel_flow(F::kOpSpecific);
  add({"linear", 2, 3, {}, infer_linear, "y = x W^T + b; weight [out, in]", linear_layer})
      .with_cost(C::kLinear)
      .with_channel_flow(F::kOpSpecific);
  // A matmul is a weighted layer when its second operand is a constant.
  add({"matmul", 2, 2, {}, infer_matmul, "torch.matmul with batch broadcasting", matmul_layer})
      .with_cost(C::kMatmul)
      .with_channel_flow(F::kOpSpecific);
  // Quantized layers are not traced for channel pruning: prune before quantizing.
  add({"qconv2d", 2, 3, concat(conv_attrs, quant_out), infer_qconv2d,
       "conv2d on quantized i8/u8 operands, exact int32 accumulation, requantized or f32 output", quantized(conv_layer)})
      .with_cost(C::kConv);
  add({"qlinear", 2, 3, quant_out, infer_qlinear, "linear on quantized operands (int32 accumulation)",
       quantized(linear_layer)})
      .with_cost(C::kLinear);
  add({"qmatmul", 2, 2, quant_out, infer_qmatmul, "matmul on quantized operands (int32 accumulation)",
       quantized(matmul_layer)})
      .with_cost(C::kMatmul);
  // Counted like add: one op per output element.
  add({"qadd", 2, 2, quant_out, infer_qadd,
       "a + b on quantized operands: fma(sb, b - zb, sa * (a - za)), requantized or f32 output"})
      .with_cost(C::kPerOutputElement, 1);
  add({"batch_norm", 5, 5, {{"eps", AttrKind::kFloat, false, 1e-5}}, infer_batch_norm,
       "inference batch norm: inputs x, weight, bias, running_mean, running_var"})
      .with_cost(C::kPerOutputElement, 2)
      .with_channel_flow(F::kOpSpecific);
  add({"layer_norm", 1, 3,
       {{"normalized_ndim", AttrKind::kInt, false, int64_t{1}}, {"eps", AttrKind::kFloat, false, 1e-5}},
       infer_trailing_norm, "layer norm over the last normalized_ndim dims; optional weight and bias"})
      .with_cost(C::kPerOutputElement, 5)
      .with_channel_flow(F::kLeadingAxes);
  // x / sqrt(mean(x^2) + eps) * weight: square, mean, scale, weight.
  add({"rms_norm", 1, 2,
       {{"normalized_ndim", AttrKind::kInt, false, int64_t{1}}, {"eps", AttrKind::kFloat, false, 1e-6}},
       infer_trailing_norm, "RMS norm over the last normalized_ndim dims (no centering); optional weight"})
      .with_cost(C::kPerOutputElement, 4)
      .with_channel_flow(F::kLeadingAxes);
  for (const char* name : {"relu", "relu6", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid"}) {
    add({name, 1, 1, {}, infer_unary, "elementwise activation"})
        .with_cost(C::kPerOutputElement, 1)
        .with_channel_flow(F::kElementwise);
  }
  add({"gelu", 1, 1, {{"approximate", AttrKind::kString, false, std::string("none")}}, infer_gelu,
       "GELU, exact (erf) or tanh approximation"})
      .with_cost(C::kPerOutputElement, 1)
      .with_channel_flow(F::kElementwise);
  add({"clamp", 1, 1, {{"min", AttrKind::kFloat, false, -INFINITY}, {"max", AttrKind::kFloat, false, INFINITY}},
       infer_clamp, "clamp to [min, max] (hardtanh)"})
      .with_cost(C::kPerOutputElement, 1)
      .with_channel_flow(F::kElementwise);
  for (const char* name : {"add", "sub", "mul", "div"}) {
    add({name, 2, 2, {}, infer_binary, "elementwise with NumPy broadcasting"})
        .with_cost(C::kPerOutputElement, 1)
        .with_channel_flow(F::kBroadcast);
  }
  add({"concat", 1, -1, {{"axis", AttrKind::kInt, false, int64_t{0}}}, infer_concat, "concatenate along axis"})
      .with_cost(C::kFree)
      .with_channel_flow(F::kOpSpecific);
  add({"split", 1, 1, {{"axis", AttrKind::kInt, false, int64_t{0}}, {"sizes", AttrKind::kInts, true, Attribute{}}},
       infer_split, "split along axis into pieces of the given sizes (one output each)"})
      .with_cost(C::kFree)
      .with_channel_flow(F::kOpSpecific);
  add({"slice", 1, 1,
       {{"axis", AttrKind::kInt, true, Attribute{}},
        {"start", AttrKind::kInt, false, int64_t{0}},
        {"end", AttrKind::kInt, false, INT64_MAX},
        {"step", AttrKind::kInt, false, int64_t{1}}},
       infer_slice, "x[start:end:step] along axis (Python semantics, clamped)"})
      .with_cost(C::kFree)
      .with_channel_flow(F::kOpSpecific);
  add({"reshape", 1, 1, {{"shape", AttrKind::kInts, true, Attribute{}}}, infer_reshape, "reshape; one dim may be -1"})
      .with_cost(C::kFree)
      .with_channel_flow(F::kOpSpecific);
  add({"flatten", 1, 1,
       {{"start_dim", AttrKind::kInt, false, int64_t{1}}, {"end_dim", AttrKind::kInt, false, int64_t{-1}}},
       infer_flatten, "merge dims start_dim..end_dim"})
      .with_cost(C::kFree)
      .with_channel_flow(F::kOpSpecific);
  add({"transpose", 1, 1, {{"dim0", AttrKind::kInt, true, Attribute{}}, {"dim1", AttrKind::kInt, true, Attribute{}}},
       infer_transpose, "swap two dims"})
      .with_cost(C::kFree)
      .with_channel_flow(F::kOpSpecific);
  add({"permute", 1, 1, {{"perm", AttrKind::kInts, true, Attribute{}}}, infer_permute, "reorder dims"})
      .with_cost(C::kFree)
      .with_channel_flow(F::kOpSpecific);
  add({"max_pool2d", 1, 1, concat(pool_attrs, {dilation}), infer_pool2d,
       "max pooling (padding counts as -inf); f32 or quantized i8/u8 (params kept)"})
      .with_cost(C::kPoolWindow)
      .with_channel_flow(F::kBatchAndChannel);
  add({"avg_pool2d", 1, 1, concat(pool_attrs, {{"count_include_pad", AttrKind::kInt, false, int64_t{1}}}),
       infer_pool2d, "average pooling"})
      .with_cost(C::kPoolWindow)
      .with_channel_flow(F::kBatchAndChannel);
  add({"adaptive_avg_pool2d", 1, 1, {{"output_size", AttrKind::kInts, true, Attribute{}}}, infer_adaptive_pool2d,
       "adaptive average pooling (PyTorch bin boundaries)"})
      .with_cost(C::kPerInputElement, 1)
      .with_channel_flow(F::kBatchAndChannel);
  add({"adaptive_max_pool2d", 1, 1, {{"output_size", AttrKind::kInts, true, Attribute{}}}, infer_adaptive_pool2d,
       "adaptive max pooling (PyTorch bin boundaries)"})
      .with_cost(C::kPerInputElement, 1)
      .with_channel_flow(F::kBatchAndChannel);
  add({"reduce_mean", 1, 1,
       {{"axes", AttrKind::kInts, true, Attribute{}}, {"keepdim", AttrKind::kInt, false, int64_t{0}}},
       infer_reduce_mean, "mean over axes"})
      .with_cost(C::kPerInputElement, 1)
      .with_channel_flow(F::kOpSpecific);
  add({"softmax", 1, 1, {{"axis", AttrKind::kInt, false, int64_t{-1}}}, infer_softmax, "softmax along axis"})
      .with_cost(C::kPerOutputElement, 3)
      .with_channel_flow(F::kOpSpecific);
  add({"embedding", 2, 2, {}, infer_embedding, "inputs (indices, weight [V, D]) -> [..., D]"})
      .with_cost(C::kFree)
      .with_channel_flow(F::kOpSpecific);
  add({"scaled_dot_product_attention", 3, 4,
       {{"is_causal", AttrKind::kInt, false, int64_t{0}}, {"scale", AttrKind::kFloat, false, 0.0}}, infer_attention,
       "softmax(q k^T * scale + mask) v; scale 0 means 1/sqrt(E)"})
      .with_cost(C::kAttention)
      .with_channel_flow(F::kOpSpecific);
  // Quantization boundaries are not traced for channel pruning: prune before quantizing.
  add({"quantize", 1, 1, quant_attrs, infer_quantize, "q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)"})
      .with_cost(C::kPerOutputElement, 1);
  add({"dequantize", 1, 1, {}, infer_dequantize, "x = scale * (q - zero_point), using the input's params"})
      .with_cost(C::kPerOutputElement, 1);
  add({"fake_quant", 1, 1, quant_attrs, infer_fake_quant, "dequantize(quantize(x)) in f32"})
      .with_cost(C::kPerOutputElement, 2);
  // One entry per OpKind, in OpKind order, so that op_schema(kind) is an index.
  COMPRESS_INTERNAL_ASSERT(t.size() == kNumOpKinds, "the op table has {} entries for {} op kinds", t.size(),
                           kNumOpKinds);
  for (size_t i = 0; i < t.size(); ++i) {
    const std::optional<OpKind> kind = op_kind_from_name(t[i].name);
    COMPRESS_INTERNAL_ASSERT(kind.has_value() && static_cast<size_t>(*kind) == i,
                             "op table entry {} ('{}') is not OpKind {}", i, t[i].name, op_name(static_cast<OpKind>(i)));
    t[i].kind = *kind;
  }
  return t;
}

}  // namespace

const std::vector<OpSchema>& op_table() {
  static const std::vector<OpSchema> table = build_table();
  return table;
}

const OpSchema* find_op(std::string_view name) {
  const std::optional<OpKind> kind = op_kind_from_name(name);
  return kind ? &op_table()[static_cast<size_t>(*kind)] : nullptr;
}

const OpSchema& op_schema(OpKind kind) {
  COMPRESS_INTERNAL_ASSERT(kind != OpKind::kUnknown, "op_schema(kUnknown)");
  return op_table()[static_cast<size_t>(kind)];
}

namespace {
constexpr std::string_view kOpNames[] = {
#define COMPRESS_OP_KIND_NAME(name) #name,
    COMPRESS_FORALL_OP_KINDS(COMPRESS_OP_KIND_NAME)
#undef COMPRESS_OP_KIND_NAME
};
}  // namespace

std::string_view op_name(OpKind kind) {
  const size_t i = static_cast<size_t>(kind);
  return i < kNumOpKinds ? kOpNames[i] : std::string_view("<unknown>");
}

std::optional<OpKind> op_kind_from_name(std::string_view name) {
  // A sorted index built once; op names come from files, so no assumptions about them.
  static const std::vector<std::pair<std::string_view, OpKind>> index = [] {
    std::vector<std::pair<std::string_view, OpKind>> v;
    for (size_t i = 0; i < kNumOpKinds; ++i) v.emplace_back(kOpNames[i], static_cast<OpKind>(i));
    std::sort(v.begin(), v.end());
    return v;
  }();
  auto it = std::lower_bound(index.begin(), index.end(), name,
                             [](const auto& entry, std::string_view n) { return entry.first < n; });
  if (it == index.end() || it->first != name) return std::nullopt;
  return it->second;
}

Status normalize_attributes(const OpSchema& schema, AttributeMap* attrs) {
  for (const auto& [name, value] : *attrs) {
    const AttrSpec* spec = nullptr;
    for (const AttrSpec& s : schema.attrs) {
      if (s.name == name) spec = &s;
    }
    COMPRESS_CHECK(spec != nullptr, kBad, "{}: unknown attribute '{}'", schema.name, name);
    // An int where a float is expected is accepted and widened (stride=1 in a recipe).
    if (spec->kind == AttrKind::kFloat && attr_kind(value) == AttrKind::kInt) continue;
    COMPRESS_CHECK(attr_kind(value) == spec->kind, kBad, "{}: attribute '{}' must be {}, got {}", schema.name, name,
                   attr_kind_name(spec->kind), attr_kind_name(attr_kind(value)));
  }
  for (const AttrSpec& spec : schema.attrs) {
    auto it = attrs->find(std::string(spec.name));
    if (it == attrs->end()) {
      COMPRESS_CHECK(!spec.required, kBad, "{}: missing required attribute '{}'", schema.name, spec.name);
      attrs->emplace(std::string(spec.name), spec.default_value);
    } else if (spec.kind == AttrKind::kFloat && attr_kind(it->second) == AttrKind::kInt) {
      it->second = static_cast<double>(std::get<int64_t>(it->second));
    }
  }
  return Status::ok();
}

Expected<std::vector<ValueType>> infer_node_types(const Node& node) {
  const OpSchema* schema = node.schema();
  COMPRESS_CHECK(schema != nullptr, StatusCode::kNotFound, "unknown op '{}'", node.op());
  const int n = static_cast<int>(node.num_inputs());
  COMPRESS_CHECK(n >= schema->min_inputs && (schema->max_inputs < 0 || n <= schema->max_inputs), kBad,
                 "{} takes {} to {} inputs, got {}", node.op(), schema->min_inputs,
                 schema->max_inputs < 0 ? std::string("any number of") : std::to_string(schema->max_inputs), n);
  // Attributes are normalized at creation; a node built unchecked may not be.
  AttributeMap attrs = node.attrs();
  COMPRESS_RETURN_IF_ERROR(normalize_attributes(*schema, &attrs));
  InferContext ctx{schema->name, {}, attrs, {}};
  for (const Value* v : node.inputs()) {
    COMPRESS_CHECK(v != nullptr, kBad, "{}: null input", node.op());
    ctx.inputs.push_back(&v->type());
    ctx.constant_inputs.push_back(v->is_constant() ? &v->constant() : nullptr);
  }
  return schema->infer(ctx);
}

}  // namespace compress::ir
