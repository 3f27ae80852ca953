// Helpers of the torch-layer tests: fixture paths, .npy I/O, tensor comparison.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "compress/ir/tensor.h"

namespace compress::test {

std::string torch_fixture(const std::string& name);
ir::Tensor load_fixture_npy(const std::string& name);
at::Tensor load_fixture_aten(const std::string& name);

struct Difference {
  double max_abs = 0;  // max |a - b|
  double max_ref = 0;  // max |b|
  double relative() const { return max_abs / (max_ref > 0 ? max_ref : 1.0); }
};
Difference compare(const ir::Tensor& actual, const ir::Tensor& expected);
Difference compare(const at::Tensor& actual, const at::Tensor& expected);

}  // namespace compress::test
