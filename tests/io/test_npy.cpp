// .npy round trips and hostile headers.
#include <catch2/catch.hpp>

#include <cstring>

#include "cmf_test_util.h"
#include "compress/io/npy.h"
#include "compress/ir/sparse_layout.h"

using namespace compress;
using namespace compress::ir;
using compress::test::TempDir;
using Catch::Matchers::Contains;

namespace {

// A v1 .npy file with the given header dict (padded like numpy) and payload.
std::string npy_file(const std::string& dict, const std::string& payload, int major = 1) {
  std::string header = dict;
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(static_cast<char>(major));
  out.push_back(0);
  const uint32_t len = static_cast<uint32_t>(header.size());
  out.push_back(static_cast<char>(len & 0xff));
  out.push_back(static_cast<char>((len >> 8) & 0xff));
  if (major != 1) {
    out.push_back(static_cast<char>((len >> 16) & 0xff));
    out.push_back(static_cast<char>((len >> 24) & 0xff));
  }
  return out + header + payload;
}

void expect_bad(const std::string& bytes, const std::string& fragment) {
  auto r = io::parse_npy(bytes, "bad.npy");
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Contains(fragment));
  CHECK_THAT(r.status().message(), Contains("bad.npy"));
}

}  // namespace

TEST_CASE("npy round trip of every supported dtype and rank") {
  TempDir dir;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kI8, DType::kU8, DType::kI32, DType::kI64, DType::kBool}) {
    for (const Shape& shape : {Shape{}, Shape{7}, Shape{2, 3, 5}, Shape{0, 4}}) {
      INFO(dtype_name(dtype) << " " << shape_to_string(shape));
      Tensor t = Tensor::zeros(dtype, shape).value();
      auto* p = static_cast<uint8_t*>(t.raw_data());
      for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(dtype == DType::kBool ? i % 2 : i * 37 + 1);
      const std::string path = dir.file("t.npy");
      REQUIRE(io::save_npy(t, path).is_ok());
      const std::string bytes = test::read_bytes(path);
      CHECK((bytes.size() - t.nbytes()) % 64 == 0);  // data starts 64-byte aligned
      auto back = io::load_npy(path);
      REQUIRE(back.has_value());
      CHECK(back->bitwise_equal(t));
    }
  }
}

TEST_CASE("npy reads f64 as f32, normalizes bools, and writes sparse tensors densely") {
  double values[3] = {1.5, -2.25, 1e10};
  std::string payload(reinterpret_cast<const char*>(values), sizeof values);
  auto t = io::parse_npy(npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", payload), "f64.npy");
  REQUIRE(t.has_value());
  CHECK(t->dtype() == DType::kF32);
  CHECK(t->data<float>()[1] == -2.25f);
  CHECK(t->data<float>()[2] == 1e10f);

  auto b = io::parse_npy(npy_file("{\"descr\": \"|b1\", \"shape\": (2, 2), \"fortran_order\": False}", std::string("\x00\x05\x01\xff", 4)),
                         "b.npy");
  REQUIRE(b.has_value());
  CHECK(b->data<uint8_t>()[1] == 1);
  CHECK(b->data<uint8_t>()[3] == 1);

  auto v2 = io::parse_npy(npy_file("{'descr': '<i4', 'fortran_order': False, 'shape': (1,)}", std::string("\x2a\0\0\0", 4), 2), "v2.npy");
  REQUIRE(v2.has_value());
  CHECK(v2->data<int32_t>()[0] == 42);

  TempDir dir;
  Tensor dense = Tensor::from_vector<float>(DType::kF32, {2, 3}, {0.f, 1.f, 0.f, 0.f, 0.f, 2.f});
  REQUIRE(io::save_npy(to_csr_layout(dense).value(), dir.file("s.npy")).is_ok());
  CHECK(io::load_npy(dir.file("s.npy")).value().bitwise_equal(dense));

  const Status st = io::save_npy(Tensor::zeros(DType::kBF16, {2}).value(), dir.file("bf16.npy"));
  CHECK(st.code() == StatusCode::kUnsupported);
  CHECK(dir.list() == std::vector<std::string>{"s.npy"});
}

TEST_CASE("npy hostile headers are clear errors") {
  const std::string ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const std::string payload(8, '\0');
  REQUIRE(io::parse_npy(npy_file(ok_dict, payload), "ok.npy").has_value());

  expect_bad("", "not a .npy file");
  expect_bad("\x93NUMP", "not a .npy file");
  expect_bad(std::string("\x93NUMPY\x09\x00", 8), "version 9.0 is not supported");
  std::string past_end = npy_file(ok_dict, payload);
  past_end[8] = '\xff';
  past_end[9] = '\xff';
  expect_bad(past_end, "header length 65535 runs past the end");
  std::string huge = npy_file(ok_dict, payload, 2);
  huge[8] = huge[9] = huge[10] = huge[11] = '\xff';
  expect_bad(huge, "header length 4294967295 exceeds");
  expect_bad(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", payload),
             "data is 8 bytes but shape [3] of '<f4' needs 3 x 4 bytes");
  expect_bad(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", payload),
             "overflows int64");
  expect_bad(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", payload),
             "dimension overflows int64");
  expect_bad(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", payload),
             "more than 8 dimensions");
  expect_bad(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", payload),
             "expected a non-negative dimension");
  expect_bad(npy_file("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", payload), "big-endian");
  expect_bad(npy_file("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", payload), "supported dtypes");
  expect_bad(npy_file("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }", payload), "Fortran-order");
  expect_bad(npy_file("{'descr': '<f4', 'fortran_order': False, }", payload), "must have the keys");
  expect_bad(npy_file("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", payload),
             "duplicate key 'descr'");
  expect_bad(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'evil': 1}", payload),
             "unexpected key 'evil'");
  expect_bad(npy_file("{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", payload), "malformed .npy header");
  expect_bad(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} trailing", payload),
             "unexpected text after the header dict");
  expect_bad(npy_file("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,)}", payload), "expected True or False");
  expect_bad(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2", payload), "malformed .npy header");
  auto missing = io::load_npy("/nonexistent/x.npy");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.status().code() == StatusCode::kNotFound);
}
