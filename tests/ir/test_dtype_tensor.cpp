#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "compress/ir/quant_params.h"
#include "compress/ir/sparse_layout.h"
#include "compress/ir/tensor.h"

using namespace compress;
using namespace compress::ir;

TEST_CASE("dtype traits table is consistent") {
  for (const DTypeTraits& t : kDTypeTable) {
    CHECK(traits(t.dtype).name == t.name);
    CHECK(dtype_from_name(t.name) == t.dtype);
    CHECK(dtype_from_code(static_cast<uint32_t>(t.dtype)) == t.dtype);
  }
  CHECK_FALSE(dtype_from_code(0).has_value());
  CHECK_FALSE(dtype_from_code(11).has_value());
  CHECK(*storage_bytes(DType::kI4, 5) == 3);
  CHECK(*storage_bytes(DType::kF32, 5) == 20);
  CHECK_FALSE(storage_bytes(DType::kI64, UINT64_MAX / 4).has_value());
}

TEST_CASE("f16 and bf16 conversions round to nearest even") {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.33325195f}) {
    CHECK(half_to_float(float_to_half(f)) == f);
  }
  CHECK(std::isinf(half_to_float(float_to_half(1e6f))));
  CHECK(std::isnan(half_to_float(float_to_half(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(bf16_to_float(float_to_bf16(1.0f)) == 1.0f);
  CHECK(bf16_to_float(float_to_bf16(1.00390625f)) == 1.0f);  // tie -> even
  CHECK(bf16_to_float(float_to_bf16(1.01171875f)) == 1.015625f);
}

TEST_CASE("tensor storage is 64-byte aligned and zero-filled") {
  Tensor t = Tensor::zeros(DType::kF32, {3, 5}).value();
  CHECK(reinterpret_cast<uintptr_t>(t.raw_data()) % kTensorAlignment == 0);
  CHECK(t.numel() == 15);
  CHECK(t.nbytes() == 60);
  for (int64_t i = 0; i < 15; ++i) CHECK(t.data<float>()[i] == 0.0f);
  CHECK_FALSE(Tensor::zeros(DType::kF32, {-1, 2}).has_value());
  CHECK_FALSE(Tensor::zeros(DType::kF32, {INT64_MAX, 4}).has_value());
  CHECK_FALSE(Tensor::zeros(DType::kF32, Shape(9, 1)).has_value());
  Tensor packed = Tensor::zeros(DType::kI4, {3}).value();
  set_packed4(packed.data<uint8_t>(), 0, -3);
  set_packed4(packed.data<uint8_t>(), 1, 7);
  set_packed4(packed.data<uint8_t>(), 2, -8);
  CHECK(packed.nbytes() == 2);
  CHECK(packed.element_as_double(0) == -3);
  CHECK(packed.element_as_double(1) == 7);
  CHECK(packed.element_as_double(2) == -8);
}

TEST_CASE("QuantParams factory rejects invalid scales and ranges") {
  CHECK(QuantParams::per_tensor(DType::kU8, 0.1f, 128).has_value());
  for (float bad : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    auto q = QuantParams::per_tensor(DType::kI8, bad, 0);
    REQUIRE_FALSE(q.has_value());
    CHECK(q.status().message().find("scale[0]") != std::string::npos);
  }
  CHECK_FALSE(QuantParams::per_tensor(DType::kU8, 0.1f, 300).has_value());
  CHECK_FALSE(QuantParams::per_tensor(DType::kF32, 0.1f, 0).has_value());
  QuantParams::Spec narrow;
  narrow.storage = DType::kI8;
  narrow.scales = {0.5f};
  narrow.qmin = -127;
  narrow.qmax = 127;
  auto q = QuantParams::create(narrow);
  REQUIRE(q.has_value());
  CHECK(q->qmin() == -127);
  narrow.qmin = -200;
  CHECK_FALSE(QuantParams::create(narrow).has_value());
  auto per_axis = QuantParams::per_axis(DType::kI8, 0, {0.1f, 0.2f}, {});
  REQUIRE(per_axis.has_value());
  CHECK(per_axis->check_shape({2, 3}).is_ok());
  CHECK_FALSE(per_axis->check_shape({3, 3}).is_ok());
  CHECK(per_axis->param_index({2, 3}, 4) == 1);
}

TEST_CASE("per-group quant params index groups along the axis") {
  QuantParams::Spec spec;
  spec.storage = DType::kI4;
  spec.granularity = QuantGranularity::kPerGroup;
  spec.axis = 1;
  spec.group_size = 2;
  spec.scales = {1, 2, 3, 4, 5, 6};  // weight [3, 4] -> 3 rows x 2 groups
  auto q = QuantParams::create(spec);
  REQUIRE(q.has_value());
  CHECK(q->check_shape({3, 4}).is_ok());
  CHECK(q->param_index({3, 4}, 0) == 0);
  CHECK(q->param_index({3, 4}, 3) == 1);
  CHECK(q->param_index({3, 4}, 5) == 2);
  CHECK(q->param_index({3, 4}, 11) == 5);
  CHECK_FALSE(q->check_shape({3, 5}).is_ok());
}

namespace {
Tensor pruned_matrix() {
  // 4 x 8 with a 2:4-compatible pattern and an empty row.
  std::vector<float> v = {1, 0, -3, 0, 0, 5, 0, 2,   //
                          0, 0, 0, 0, 0, 0, 0, 0,    //
                          7, -1, 0, 0, 0, 0, 4, 4,   //
                          0, 9, 0, -6, 3, 0, 0, 8};
  return Tensor::from_vector(DType::kF32, {4, 8}, v);
}
}  // namespace

TEST_CASE("sparse layouts keep the logical shape and densify exactly") {
  const Tensor dense = pruned_matrix();
  CHECK(dense.sparsity() == Approx(20.0 / 32.0));
  for (int kind = 0; kind < 3; ++kind) {
    Tensor s = kind == 0 ? to_mask_layout(dense).value() : kind == 1 ? to_csr_layout(dense).value()
                                                                     : to_block_layout(dense, 2, 2).value();
    CHECK(s.is_sparse());
    CHECK(s.shape() == dense.shape());
    CHECK(s.sparse_layout()->validate(s.shape(), s.stored_count()).is_ok());
    CHECK(s.to_dense()->bitwise_equal(dense));
    CHECK(s.sparsity() == Approx(dense.sparsity()));
  }
  Tensor csr = to_csr_layout(dense).value();
  CHECK(csr.stored_count() == 12);
  CHECK(csr.nbytes() == 48);
  // 2:4 keeps the 2 largest magnitudes of each group of 4.
  Tensor nm = to_nm_layout(dense, 2, 4).value();
  CHECK(nm.stored_count() == 16);
  Tensor back = nm.to_dense().value();
  CHECK(back.data<float>()[0] == 1);
  CHECK(back.data<float>()[2] == -3);
  CHECK(back.data<float>()[5] == 5);
  CHECK(back.data<float>()[7] == 2);
  CHECK(back.data<float>()[25] == 9);
  CHECK(back.data<float>()[27] == -6);
  CHECK(back.data<float>()[28] == 3);
  CHECK(back.data<float>()[31] == 8);
  CHECK_FALSE(to_nm_layout(dense, 2, 3).has_value());
  CHECK_FALSE(to_block_layout(dense, 3, 2).has_value());
}

TEST_CASE("sparse layout validation catches bad indices") {
  const Tensor csr = to_csr_layout(pruned_matrix()).value();
  SparseLayout bad = *csr.sparse_layout();
  Tensor cols = bad.indices[1].clone().value();
  cols.data<int32_t>()[0] = 8;  // out of range
  bad.indices[1] = cols;
  auto status = bad.validate(csr.shape(), csr.stored_count());
  CHECK(status.message().find("out of range") != std::string::npos);
  cols = csr.sparse_layout()->indices[1].clone().value();
  std::swap(cols.data<int32_t>()[0], cols.data<int32_t>()[1]);  // not increasing
  bad.indices[1] = cols;
  CHECK(bad.validate(csr.shape(), csr.stored_count()).message().find("strictly increasing") != std::string::npos);
  CHECK_FALSE(csr.sparse_layout()->validate(csr.shape(), 14).is_ok());
}

TEST_CASE("quantized sparse tensors densify to the zero point") {
  Tensor q = Tensor::from_vector(DType::kU8, {2, 4}, std::vector<uint8_t>{10, 3, 3, 9, 3, 3, 3, 3});
  q = q.with_quant(std::make_shared<const QuantParams>(QuantParams::per_tensor(DType::kU8, 0.5f, 3).value()));
  CHECK(q.sparsity() == Approx(6.0 / 8.0));
  Tensor csr = to_csr_layout(q).value();
  CHECK(csr.stored_count() == 2);
  CHECK(csr.to_dense()->bitwise_equal(q));
}

TEST_CASE("storage_bytes never wraps") {
  CHECK(*storage_bytes(DType::kU4, (uint64_t{1} << 62) + 1) == (uint64_t{1} << 61) + 1);
  CHECK(*storage_bytes(DType::kU4, UINT64_MAX) == UINT64_MAX / 2 + 1);
  CHECK_FALSE(storage_bytes(DType::kF32, UINT64_MAX / 2).has_value());
}
