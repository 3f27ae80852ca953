// Data movement ops on any dtype: concat, split, slice, reshape, flatten, transpose, permute.
#include <algorithm>
#include <cstring>

#include "kernels.h"

namespace compress::runtime::reference {
namespace {

constexpr StatusCode kBad = StatusCode::kInvalidArgument;

Expected<size_t> element_bytes(const Tensor& t) {
  COMPRESS_CHECK(!ir::is_packed(t.dtype()), StatusCode::kUnsupported,
                 "{} tensors (two per byte) cannot be moved element-wise; dequantize first", ir::dtype_name(t.dtype()));
  return static_cast<size_t>(ir::dtype_bits(t.dtype()) / 8);
}

// Quant params of a moved tensor: those of the node's output type when they
// fit the actual shape, else the input's when per tensor, else none (a
// per-channel axis does not survive an arbitrary move).
Tensor with_moved_quant(const ir::Node& node, size_t output, const ir::QuantParams* in_quant, Tensor t) {
  const auto& declared = node.output(output)->type().quant;
  if (declared && declared->check_shape(t.shape()).is_ok()) return t.with_quant(declared);
  if (in_quant && in_quant->granularity() == ir::QuantGranularity::kPerTensor) {
    return t.with_quant(std::make_shared<const ir::QuantParams>(*in_quant));
  }
  return t.with_quant(nullptr);
}

// Copies x into a new tensor of `out_shape` where out element (i0..ik) reads
// x at sum(i_d * in_strides[d]) (elements); the generic strided gather.
Expected<Tensor> gather_strided(const Tensor& x, const Shape& out_shape, const Shape& in_strides, int64_t in_offset) {
  COMPRESS_ASSIGN_OR_RETURN(size_t esize, element_bytes(x));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(x.dtype(), out_shape));
  const int64_t count = out.numel();
  if (count == 0) return out;
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  const size_t rank = out_shape.size();
  std::vector<int64_t> index(rank, 0);
  int64_t offset = in_offset;
  for (int64_t t = 0; t < count; ++t) {
    std::memcpy(dst + static_cast<size_t>(t) * esize, src + static_cast<size_t>(offset) * esize, esize);
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < out_shape[d]) {
        offset += in_strides[d];
        break;
      }
      offset -= in_strides[d] * (out_shape[d] - 1);
      index[d] = 0;
    }
  }
  return out;
}

Expected<Tensor> permuted(const Tensor& x, const std::vector<int64_t>& perm) {
  const Shape strides = row_major_strides(x.shape());
  Shape out_shape(perm.size()), in_strides(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    out_shape[i] = x.shape()[perm[i]];
    in_strides[i] = strides[perm[i]];
  }
  return gather_strided(x, out_shape, in_strides, 0);
}

}  // namespace

Expected<Tensors> concat(const ir::Node& node, const Tensors& in) {
  const Tensor& first = in[0];
  COMPRESS_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(node.attr_int("axis"), first.rank()));
  COMPRESS_ASSIGN_OR_RETURN(size_t esize, element_bytes(first));
  Shape out_shape = first.shape();
  for (size_t i = 1; i < in.size(); ++i) {
    const Tensor& t = in[i];
    bool same = t.dtype() == first.dtype() && t.rank() == first.rank();
    for (int64_t d = 0; same && d < first.rank(); ++d) same = d == axis || t.dim(d) == first.dim(d);
    COMPRESS_CHECK(same, kBad, "input {} is {} {}, input 0 is {} {} (only axis {} may differ)", i,
                   ir::dtype_name(t.dtype()), ir::shape_to_string(t.shape()), ir::dtype_name(first.dtype()),
                   ir::shape_to_string(first.shape()), axis);
    out_shape[axis] += t.dim(axis);
  }
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, new_tensor(first.dtype(), out_shape));
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= first.dim(d);
  for (int64_t d = axis + 1; d < first.rank(); ++d) inner *= first.dim(d);
  char* dst = static_cast<char*>(out.raw_data());
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor& t : in) {
      const size_t bytes = static_cast<size_t>(t.dim(axis) * inner) * esize;
      if (bytes == 0) continue;
      std::memcpy(dst, static_cast<const char*>(t.raw_data()) + static_cast<size_t>(o) * bytes, bytes);
      dst += bytes;
    }
  }
  return Tensors{with_moved_quant(node, 0, input_quant(node, in, 0), std::move(out))};
}

Expected<Tensors> split(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  COMPRESS_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(node.attr_int("axis"), x.rank()));
  const auto& sizes = node.attr_ints("sizes");
  int64_t total = 0;
  for (int64_t s : sizes) {
    COMPRESS_CHECK(s >= 0, kBad, "negative split size {}", s);
    total += s;
  }
  COMPRESS_CHECK(total == x.dim(axis), kBad, "sizes {} sum to {}, but input {} has {} along axis {}",
                 ir::shape_to_string(sizes), total, ir::shape_to_string(x.shape()), x.dim(axis), axis);
  const Shape strides = row_major_strides(x.shape());
  Tensors outs;
  int64_t start = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Shape shape = x.shape();
    shape[axis] = sizes[i];
    COMPRESS_ASSIGN_OR_RETURN(Tensor piece, gather_strided(x, shape, strides, start * strides[axis]));
    outs.push_back(with_moved_quant(node, i, input_quant(node, in, 0), std::move(piece)));
    start += sizes[i];
  }
  return outs;
}

Expected<Tensors> slice(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  COMPRESS_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(node.attr_int("axis"), x.rank()));
  const int64_t dim = x.dim(axis);
  const int64_t step = node.attr_int("step");
  COMPRESS_CHECK(step >= 1, kBad, "step must be >= 1, got {}", step);
  // Python semantics: negative indices count from the end, then clamp.
  int64_t start = node.attr_int("start"), end = node.attr_int("end");
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  start = std::clamp<int64_t>(start, 0, dim);
  end = std::clamp<int64_t>(end, 0, dim);
  Shape shape = x.shape();
  shape[axis] = end > start ? (end - start + step - 1) / step : 0;
  Shape strides = row_major_strides(x.shape());
  const int64_t offset = start * strides[axis];
  strides[axis] *= step;
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, gather_strided(x, shape, strides, offset));
  return Tensors{with_moved_quant(node, 0, input_quant(node, in, 0), std::move(out))};
}

Expected<Tensors> reshape(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  Shape shape = node.attr_ints("shape");
  // The -1 is resolved from the actual element count, so a graph built for
  // one batch runs with another when the batch dim is the -1.
  int64_t known = 1;
  int infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      COMPRESS_CHECK(infer_at < 0, kBad, "more than one -1 in shape {}", ir::shape_to_string(shape));
      infer_at = static_cast<int>(i);
      continue;
    }
    COMPRESS_CHECK(shape[i] >= 0, kBad, "invalid dim {} in shape {}", shape[i], ir::shape_to_string(shape));
    known *= shape[i];
  }
  if (infer_at >= 0) {
    COMPRESS_CHECK(known != 0 && x.numel() % known == 0, kBad, "cannot reshape {} into {}",
                   ir::shape_to_string(x.shape()), ir::shape_to_string(shape));
    shape[infer_at] = x.numel() / known;
  }
  COMPRESS_CHECK(ir::checked_numel(shape) == x.numel(), kBad, "cannot reshape {} ({} elements) into {}",
                 ir::shape_to_string(x.shape()), x.numel(), ir::shape_to_string(shape));
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, x.with_quant(nullptr).reshaped(shape));
  return Tensors{with_moved_quant(node, 0, input_quant(node, in, 0), std::move(out))};
}

Expected<Tensors> flatten(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  const int64_t rank = std::max<int64_t>(1, x.rank());
  COMPRESS_ASSIGN_OR_RETURN(int64_t start, normalize_axis(node.attr_int("start_dim"), rank));
  COMPRESS_ASSIGN_OR_RETURN(int64_t end, normalize_axis(node.attr_int("end_dim"), rank));
  COMPRESS_CHECK(start <= end, kBad, "start_dim {} > end_dim {}", start, end);
  Shape shape;
  if (x.rank() == 0) {
    shape = {1};
  } else {
    shape.assign(x.shape().begin(), x.shape().begin() + start);
    int64_t merged = 1;
    for (int64_t d = start; d <= end; ++d) merged *= x.dim(d);
    shape.push_back(merged);
    shape.insert(shape.end(), x.shape().begin() + end + 1, x.shape().end());
  }
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, x.with_quant(nullptr).reshaped(shape));
  return Tensors{with_moved_quant(node, 0, input_quant(node, in, 0), std::move(out))};
}

Expected<Tensors> transpose(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  COMPRESS_ASSIGN_OR_RETURN(int64_t a, normalize_axis(node.attr_int("dim0"), x.rank()));
  COMPRESS_ASSIGN_OR_RETURN(int64_t b, normalize_axis(node.attr_int("dim1"), x.rank()));
  std::vector<int64_t> perm(static_cast<size_t>(x.rank()));
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(i);
  std::swap(perm[a], perm[b]);
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, permuted(x, perm));
  return Tensors{with_moved_quant(node, 0, input_quant(node, in, 0), std::move(out))};
}

Expected<Tensors> permute(const ir::Node& node, const Tensors& in) {
  const Tensor& x = in[0];
  const auto& attr = node.attr_ints("perm");
  COMPRESS_CHECK(static_cast<int64_t>(attr.size()) == x.rank(), kBad, "perm {} has {} entries, input {} has rank {}",
                 ir::shape_to_string(attr), attr.size(), ir::shape_to_string(x.shape()), x.rank());
  std::vector<int64_t> perm(attr.size());
  std::vector<bool> seen(attr.size(), false);
  for (size_t i = 0; i < attr.size(); ++i) {
    COMPRESS_ASSIGN_OR_RETURN(perm[i], normalize_axis(attr[i], x.rank()));
    COMPRESS_CHECK(!seen[perm[i]], kBad, "perm {} repeats axis {}", ir::shape_to_string(attr), perm[i]);
    seen[perm[i]] = true;
  }
  COMPRESS_ASSIGN_OR_RETURN(Tensor out, permuted(x, perm));
  return Tensors{with_moved_quant(node, 0, input_quant(node, in, 0), std::move(out))};
}

}  // namespace compress::runtime::reference
