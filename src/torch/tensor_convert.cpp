#include "compress/torch/tensor_convert.h"

#include <ATen/ATen.h>

#include <cstring>

#include "compress/support/check.h"

namespace compress::torch {
namespace {

Expected<at::ScalarType> scalar_type_of(ir::DType dtype) {
  switch (dtype) {
    case ir::DType::kF32: return at::kFloat;
    case ir::DType::kF16: return at::kHalf;
    case ir::DType::kBF16: return at::kBFloat16;
    case ir::DType::kI8: return at::kChar;
    case ir::DType::kU8: return at::kByte;
    case ir::DType::kI32: return at::kInt;
    case ir::DType::kI64: return at::kLong;
    case ir::DType::kBool: return at::kBool;
    case ir::DType::kI4:
    case ir::DType::kU4: return at::kChar;  // unpacked
  }
  return unsupported("dtype {} has no ATen equivalent", ir::dtype_name(dtype));
}

}  // namespace

Expected<at::Tensor> to_aten(const ir::Tensor& tensor) {
  COMPRESS_CHECK(tensor.defined(), StatusCode::kInvalidArgument, "to_aten: undefined tensor");
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor dense, tensor.to_dense());
  COMPRESS_ASSIGN_OR_RETURN(at::ScalarType type, scalar_type_of(dense.dtype()));
  at::Tensor out = at::empty(dense.shape(), at::TensorOptions().dtype(type));
  if (ir::is_packed(dense.dtype())) {
    const bool is_signed = dense.dtype() == ir::DType::kI4;
    auto* dst = out.data_ptr<int8_t>();
    for (int64_t i = 0; i < dense.numel(); ++i) {
      dst[i] = static_cast<int8_t>(ir::get_packed4(dense.data<uint8_t>(), i, is_signed));
    }
    return out;
  }
  if (dense.nbytes() > 0) std::memcpy(out.data_ptr(), dense.raw_data(), dense.nbytes());
  return out;
}

Expected<ir::Tensor> from_aten(const at::Tensor& input) {
  COMPRESS_CHECK(input.defined(), StatusCode::kInvalidArgument, "from_aten: undefined tensor");
  COMPRESS_CHECK(!input.is_quantized(), StatusCode::kUnsupported,
                 "from_aten: ATen quantized tensors are not imported directly (dequantize first)");
  at::Tensor t = input.detach().to(at::kCPU).contiguous();
  ir::DType dtype;
  switch (t.scalar_type()) {
    case at::kFloat: dtype = ir::DType::kF32; break;
    case at::kDouble:
      t = t.to(at::kFloat);
      dtype = ir::DType::kF32;
      break;
    case at::kHalf: dtype = ir::DType::kF16; break;
    case at::kBFloat16: dtype = ir::DType::kBF16; break;
    case at::kChar: dtype = ir::DType::kI8; break;
    case at::kByte: dtype = ir::DType::kU8; break;
    case at::kInt: dtype = ir::DType::kI32; break;
    case at::kLong: dtype = ir::DType::kI64; break;
    case at::kBool: dtype = ir::DType::kBool; break;
    default: return unsupported("from_aten: scalar type {} is not supported", c10::toString(t.scalar_type()));
  }
  COMPRESS_ASSIGN_OR_RETURN(ir::Tensor out, ir::Tensor::zeros(dtype, t.sizes().vec()));
  if (out.nbytes() > 0) std::memcpy(out.raw_data(), t.data_ptr(), out.nbytes());
  return out;
}

}  // namespace compress::torch
