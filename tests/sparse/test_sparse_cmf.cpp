// .cmf size of sparse weights: a 90%-sparse CSR model within 20% of the dense file, sizes shrinking with
// sparsity, exact round trips of the compact (bitmask) CSR encoding, and a corrupted bitmask rejected.
#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "compress/io/cmf.h"
#include "compress/io/cmf_format.h"
#include "compress/ir/graph.h"
#include "compress/ir/sparse_layout.h"

using namespace compress;
using ir::DType;
using ir::Tensor;

namespace {

Tensor pruned_weight(int64_t rows, int64_t cols, double sparsity, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::uniform_real_distribution<double> keep(0.0, 1.0);
  std::vector<float> w(static_cast<size_t>(rows * cols), 0.0f);
  for (float& v : w) v = keep(rng) >= sparsity ? value(rng) : 0.0f;
  return Tensor::from_vector(DType::kF32, {rows, cols}, w);
}

// x [1, 512] -> linear(w [512, 512], b) -> relu -> linear(w2 [10, 512]): a small MLP whose size is its big weight.
ir::Graph mlp(const Tensor& w) {
  ir::Graph g;
  g.name = "mlp";
  ir::Value* x = g.add_input("x", ir::ValueType{DType::kF32, {1, 512}, nullptr}).value();
  ir::Value* wv = g.add_constant("fc1.weight", w).value();
  ir::Value* bv = g.add_constant("fc1.bias", pruned_weight(1, 512, 0.0, 3).reshaped({512}).value()).value();
  ir::Value* h = g.add_node("linear", {x, wv, bv}, {}, "fc1").value()->output();
  ir::Value* r = g.add_node("relu", {h}, {}, "relu").value()->output();
  ir::Value* w2 = g.add_constant("fc2.weight", pruned_weight(10, 512, 0.0, 4)).value();
  ir::Value* y = g.add_node("linear", {r, w2}, {}, "fc2").value()->output();
  g.set_outputs({y});
  return g;
}

size_t file_size(const Tensor& w) {
  auto bytes = io::serialize_cmf(mlp(w));
  REQUIRE(bytes.has_value());
  return bytes->size();
}

}  // namespace

TEST_CASE("a 90 percent sparse CSR model is at most 20 percent of the dense file", "[sparse][cmf]") {
  const Tensor dense = pruned_weight(512, 512, 0.9, 1);
  const size_t dense_bytes = file_size(dense);
  const size_t csr_bytes = file_size(*ir::to_csr_layout(dense));
  INFO("dense " << dense_bytes << " bytes, csr " << csr_bytes << " bytes");
  // The fc1 weight is 1 MiB dense; the rest of the file (fc2, bias, header) is the same in both.
  CHECK(static_cast<double>(csr_bytes) <= 0.20 * static_cast<double>(dense_bytes));
  // The weight alone: values (10% of 4 bytes) + bitmask (1/8 byte) per element, about 13% of dense.
  const double weight_ratio = static_cast<double>(csr_bytes - (dense_bytes - 512 * 512 * 4)) / (512.0 * 512 * 4);
  CHECK(weight_ratio <= 0.15);
}

TEST_CASE("the .cmf of a CSR weight shrinks with its sparsity", "[sparse][cmf]") {
  size_t previous = file_size(pruned_weight(512, 512, 0.0, 2));
  for (double s : {0.5, 0.8, 0.9, 0.95, 0.99}) {
    const size_t bytes = file_size(*ir::to_csr_layout(pruned_weight(512, 512, s, 2)));
    INFO("sparsity " << s << ": " << bytes << " bytes, previous " << previous);
    CHECK(bytes < previous);
    previous = bytes;
  }
}

TEST_CASE("compact CSR encoding round-trips exactly and is canonical", "[sparse][cmf]") {
  for (double s : {0.0, 0.5, 0.9, 0.99, 1.0}) {
    INFO("sparsity " << s);
    const Tensor w = *ir::to_csr_layout(pruned_weight(512, 512, s, 5));
    const ir::Graph g = mlp(w);
    const std::string bytes = *io::serialize_cmf(g);
    auto loaded = io::cmf::parse_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem", {});
    REQUIRE(loaded.has_value());
    const Tensor& back = loaded->find_value("fc1.weight")->constant();
    CHECK(back.bitwise_equal(w));
    CHECK(*io::serialize_cmf(*loaded) == bytes);
  }
}

TEST_CASE("a corrupted CSR bitmask is rejected with a reason", "[sparse][cmf]") {
  const Tensor w = *ir::to_csr_layout(pruned_weight(512, 512, 0.9, 6));
  std::string bytes = *io::serialize_cmf(mlp(w));
  // The weight is the first tensor: its bitmask is the first blob of the data section.
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data() + io::cmf::kHeaderLengthOffset, 8);
  const size_t data_start = static_cast<size_t>(io::cmf::align_up(io::cmf::kPreambleSize + header_length, 64));
  // One more bit set than there are stored values (checksums off: the structural check must catch it).
  size_t i = data_start;
  while (static_cast<uint8_t>(bytes[i]) == 0xff) ++i;
  uint8_t byte = static_cast<uint8_t>(bytes[i]);
  byte = static_cast<uint8_t>(byte | (byte + 1));  // sets the lowest clear bit
  bytes[i] = static_cast<char>(byte);
  io::cmf::ParseOptions no_checksums;
  no_checksums.verify_header_checksum = false;
  no_checksums.verify_data_checksums = false;
  auto loaded = io::cmf::parse_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem", no_checksums);
  REQUIRE_FALSE(loaded.has_value());
  CHECK_THAT(loaded.status().message(), Catch::Contains("invalid csr bitmask") && Catch::Contains("bits set"));
}
