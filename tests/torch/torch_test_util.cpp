#include "torch_test_util.h"

#include <ATen/ATen.h>

#include <cmath>

#include "compress/io/npy.h"
#include "compress/torch/tensor_convert.h"

namespace compress::test {

std::string torch_fixture(const std::string& name) { return std::string(COMPRESS_TORCH_FIXTURES) + "/" + name; }

ir::Tensor load_fixture_npy(const std::string& name) { return io::load_npy(torch_fixture(name)).value(); }

at::Tensor load_fixture_aten(const std::string& name) {
  return torch::to_aten(load_fixture_npy(name)).value();
}

Difference compare(const ir::Tensor& actual, const ir::Tensor& expected) {
  return compare(torch::to_aten(actual).value(), torch::to_aten(expected).value());
}

Difference compare(const at::Tensor& actual, const at::Tensor& expected) {
  Difference d;
  if (actual.sizes() != expected.sizes()) {
    d.max_abs = INFINITY;
    return d;
  }
  const at::Tensor a = actual.detach().to(at::kDouble);
  const at::Tensor b = expected.detach().to(at::kDouble);
  d.max_abs = (a - b).abs().max().item<double>();
  d.max_ref = b.abs().max().item<double>();
  if (std::isnan(d.max_abs)) d.max_abs = INFINITY;
  return d;
}

}  // namespace compress::test
