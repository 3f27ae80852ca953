// Helpers shared by the reference kernels: shape checks, broadcasting, quant params from attributes.
#include "kernels.h"

#include <algorithm>

namespace compress::runtime::reference {

constexpr StatusCode kBad = StatusCode::kInvalidArgument;

Status check_f32(const Tensor& t, const char* what) {
  COMPRESS_CHECK(t.defined(), kBad, "{} is missing", what);
  COMPRESS_CHECK(t.dtype() == DType::kF32, kBad, "{} must be f32, got {} {}", what, ir::dtype_name(t.dtype()),
                 ir::shape_to_string(t.shape()));
  return Status::ok();
}

Status check_rank(const Tensor& t, int64_t rank, const char* what) {
  COMPRESS_CHECK(t.rank() == rank, kBad, "{} must have rank {}, got shape {}", what, rank,
                 ir::shape_to_string(t.shape()));
  return Status::ok();
}

Expected<int64_t> normalize_axis(int64_t axis, int64_t rank) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  COMPRESS_CHECK(a >= 0 && a < rank, kBad, "axis {} out of range for rank {}", axis, rank);
  return a;
}

Expected<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    COMPRESS_CHECK(da == db || da == 1 || db == 1, kBad, "shapes {} and {} do not broadcast", ir::shape_to_string(a),
                   ir::shape_to_string(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape row_major_strides(const Shape& shape) {
  Shape strides(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
  return strides;
}

std::vector<int64_t> broadcast_batch_offsets(const Shape& out_batch, const Shape& in_batch) {
  const size_t rank = out_batch.size();
  // Strides of the input over the output's dims; 0 where the input broadcasts.
  Shape in_strides(rank, 0);
  int64_t stride = 1;
  for (size_t i = 0; i < in_batch.size(); ++i) {
    const size_t in_dim = in_batch.size() - 1 - i;
    const size_t out_dim = rank - 1 - i;
    in_strides[out_dim] = in_batch[in_dim] == 1 ? 0 : stride;
    stride *= in_batch[in_dim];
  }
  const int64_t count = ir::numel(out_batch);
  std::vector<int64_t> offsets(static_cast<size_t>(count), 0);
  std::vector<int64_t> index(rank, 0);
  int64_t offset = 0;
  for (int64_t t = 0; t < count; ++t) {
    offsets[static_cast<size_t>(t)] = offset;
    for (size_t d = rank; d-- > 0;) {  // odometer increment
      if (++index[d] < out_batch[d]) {
        offset += in_strides[d];
        break;
      }
      offset -= in_strides[d] * (out_batch[d] - 1);
      index[d] = 0;
    }
  }
  return offsets;
}

Expected<int64_t> window_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad_lo, int64_t pad_hi,
                                     int64_t dilation, bool ceil_mode) {
  COMPRESS_CHECK(kernel > 0 && stride > 0 && dilation > 0 && pad_lo >= 0 && pad_hi >= 0, kBad,
                 "kernel {}, stride {}, dilation {} must be positive and padding {},{} non-negative", kernel, stride,
                 dilation, pad_lo, pad_hi);
  const int64_t span = in + pad_lo + pad_hi - dilation * (kernel - 1) - 1;
  COMPRESS_CHECK(span >= 0, kBad, "kernel {} (dilation {}) is larger than the padded input {}", kernel, dilation,
                 in + pad_lo + pad_hi);
  int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  // PyTorch: in ceil mode the last window must start inside the input or the left padding.
  if (ceil_mode && (out - 1) * stride >= in + pad_lo) --out;
  return out;
}

Expected<Tensor> new_tensor(DType dtype, Shape shape) {
  const auto count = ir::checked_numel(shape);
  COMPRESS_CHECK(count.has_value(), kBad, "invalid output shape {}", ir::shape_to_string(shape));
  return Tensor::zeros(dtype, std::move(shape));
}

const ir::QuantParams* input_quant(const ir::Node& node, const Tensors& inputs, size_t i) {
  if (i < inputs.size() && inputs[i].quant()) return inputs[i].quant().get();
  if (i < node.num_inputs() && node.input(i) != nullptr && node.input(i)->type().quant) {
    return node.input(i)->type().quant.get();
  }
  return nullptr;
}

Expected<ir::QuantParams> quant_params_from_attrs(const ir::Node& node, const Shape& shape) {
  const auto dtype = ir::dtype_from_name(node.attr_string("dtype"));
  COMPRESS_CHECK(dtype.has_value(), kBad, "unknown dtype '{}'", node.attr_string("dtype"));
  ir::QuantParams::Spec spec;
  spec.storage = *dtype;
  const std::vector<double>& scales = node.attr_floats("scale");
  for (double s : scales) spec.scales.push_back(static_cast<float>(s));
  for (int64_t z : node.attr_ints("zero_point")) {
    COMPRESS_CHECK(z >= INT32_MIN && z <= INT32_MAX, kBad, "zero point {} out of range", z);
    spec.zero_points.push_back(static_cast<int32_t>(z));
  }
  // Same reading of the attributes as the op table's inference.
  const int64_t group = node.attr_int("group_size");
  const int64_t axis = node.attr_int("axis");
  if (group > 0) {
    spec.granularity = ir::QuantGranularity::kPerGroup;
    spec.group_size = group;
  } else if (scales.size() != 1 || axis != -1) {
    spec.granularity = ir::QuantGranularity::kPerAxis;
  }
  if (spec.granularity != ir::QuantGranularity::kPerTensor) {
    COMPRESS_ASSIGN_OR_RETURN(spec.axis, normalize_axis(axis, static_cast<int64_t>(shape.size())));
  }
  if (node.attr_int("qmin") != 0 || node.attr_int("qmax") != 0) {
    spec.qmin = node.attr_int("qmin");
    spec.qmax = node.attr_int("qmax");
  }
  COMPRESS_ASSIGN_OR_RETURN(ir::QuantParams params, ir::QuantParams::create(std::move(spec)));
  COMPRESS_RETURN_IF_ERROR(params.check_shape(shape));
  return params;
}

int64_t integer_element(const Tensor& t, int64_t i) {
  const void* data = t.raw_data();
  switch (t.dtype()) {
    case DType::kI8:
      return static_cast<const int8_t*>(data)[i];
    case DType::kU8:
      return static_cast<const uint8_t*>(data)[i];
    case DType::kI4:
      return ir::get_packed4(static_cast<const uint8_t*>(data), i, true);
    case DType::kU4:
      return ir::get_packed4(static_cast<const uint8_t*>(data), i, false);
    case DType::kI32:
      return static_cast<const int32_t*>(data)[i];
    case DType::kI64:
      return static_cast<const int64_t*>(data)[i];
    case DType::kBool:
      return static_cast<const uint8_t*>(data)[i] != 0 ? 1 : 0;
    default:
      break;
  }
  COMPRESS_INTERNAL_ASSERT(false, "integer_element on a {} tensor", ir::dtype_name(t.dtype()));
  return 0;
}

}  // namespace compress::runtime::reference
