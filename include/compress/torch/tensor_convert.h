// Conversions between ir::Tensor and at::Tensor (copies; both directions).
#pragma once

#include <ATen/core/Tensor.h>

#include "compress/ir/tensor.h"
#include "compress/support/status.h"

namespace compress::torch {

// Dense f32/f16/bf16/i8/u8/i32/i64/bool tensors. Quantized storage is copied
// as its integer values (the quant params stay on the IR side); sparse
// tensors are densified first. 4-bit types are unpacked to int8.
Expected<at::Tensor> to_aten(const ir::Tensor& tensor);
Expected<ir::Tensor> from_aten(const at::Tensor& tensor);

}  // namespace compress::torch
