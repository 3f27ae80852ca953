#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "compress/eval/dataset.h"
#include "compress/eval/metrics.h"
#include "compress/io/npy.h"
#include "compress/runtime/backend.h"

using namespace compress;

namespace {

std::string scratch(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "compress_eval_test";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A valid IDX image file of `n` 2x3 images with pixel value i*6+j.
std::string idx_images(uint32_t n) {
  std::string b = {0, 0, 8, 3};
  for (uint32_t d : {n, 2u, 3u}) {
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<char>((d >> shift) & 0xff));
  }
  for (uint32_t i = 0; i < n * 6; ++i) b.push_back(static_cast<char>(i % 256));
  return b;
}

std::string idx_labels(uint32_t n) {
  std::string b = {0, 0, 8, 1};
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<char>((n >> shift) & 0xff));
  for (uint32_t i = 0; i < n; ++i) b.push_back(static_cast<char>(i % 10));
  return b;
}

}  // namespace

TEST_CASE("fashion-mnist from Debian's package") {
  eval::DatasetOptions options;
  options.normalization = {0.2860f, 0.3530f};
  auto test = eval::open_dataset("fashion-mnist:test", options);
  INFO((test ? "" : test.status().message()));
  REQUIRE(test.has_value());
  CHECK((*test)->size() == 10000);
  CHECK(((*test)->sample_shape() == ir::Shape{1, 28, 28}));
  auto batch = (*test)->batch(0, 8);
  REQUIRE(batch.has_value());
  CHECK((batch->inputs.shape() == ir::Shape{8, 1, 28, 28}));
  // The first test image is an ankle boot (class 9).
  CHECK(batch->labels[0] == 9);
  float lo = 1e9f, hi = -1e9f;
  for (int64_t i = 0; i < batch->inputs.numel(); ++i) {
    lo = std::min(lo, batch->inputs.data<float>()[i]);
    hi = std::max(hi, batch->inputs.data<float>()[i]);
  }
  CHECK(lo == Approx(-0.2860f / 0.3530f));
  CHECK(hi == Approx((1.0f - 0.2860f) / 0.3530f));
  options.limit = 100;
  CHECK((*eval::open_dataset("fashion-mnist:train", options))->size() == 100);
}

TEST_CASE("IDX files, plain, with labels and limits") {
  write_bytes(scratch("img.idx"), idx_images(5));
  write_bytes(scratch("lbl.idx"), idx_labels(5));
  auto data = eval::open_dataset("idx:" + scratch("img.idx") + "," + scratch("lbl.idx"));
  REQUIRE(data.has_value());
  CHECK((*data)->size() == 5);
  auto b = (*data)->batch(1, 2).value();
  CHECK(b.inputs.data<float>()[0] == Approx(6.0f / 255.0f));
  CHECK((b.labels == std::vector<int64_t>{1, 2}));
  CHECK_FALSE((*data)->batch(4, 2).has_value());
}

TEST_CASE("hostile IDX files are clear errors") {
  const std::string good = idx_images(4);
  struct Case {
    std::string name, bytes, message;
  };
  std::vector<Case> cases = {
      {"empty", "", "too short"},
      {"magic", std::string("\x01\x00\x08\x03", 4) + good.substr(4), "bad magic"},
      {"type", std::string("\x00\x00\x0d\x03", 4) + good.substr(4), "not u8"},
      {"rank", std::string("\x00\x00\x08\x09", 4) + good.substr(4), "rank 9"},
      {"truncated", good.substr(0, good.size() - 3), "need"},
      {"huge dims", std::string("\x00\x00\x08\x03\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x02", 16), "too large"},
      {"header", std::string("\x00\x00\x08\x03\x00\x00", 6), "truncated IDX header"},
  };
  for (const Case& c : cases) {
    write_bytes(scratch(c.name + ".idx"), c.bytes);
    auto data = eval::open_idx(scratch(c.name + ".idx"), "");
    INFO(c.name);
    REQUIRE_FALSE(data.has_value());
    CHECK(data.status().message().find(c.message) != std::string::npos);
    CHECK(data.status().message().find(c.name + ".idx") != std::string::npos);
  }
  write_bytes(scratch("img4.idx"), good);
  write_bytes(scratch("lbl5.idx"), idx_labels(5));
  auto mismatch = eval::open_idx(scratch("img4.idx"), scratch("lbl5.idx"));
  CHECK(mismatch.status().message().find("5 labels for 4 images") != std::string::npos);
  // A file that claims to be gzip but is corrupt.
  write_bytes(scratch("bad.gz"), std::string("\x1f\x8b\x08\x00garbage-garbage-garbage", 26));
  CHECK_FALSE(eval::open_idx(scratch("bad.gz"), "").has_value());
}

TEST_CASE("dataset specs reject mistakes with the spec named") {
  auto no_kind = eval::open_dataset("mnist");
  CHECK(no_kind.status().message().find("expected KIND:ARGS") != std::string::npos);
  auto unknown = eval::open_dataset("cifar:test");
  CHECK(unknown.status().message().find("unknown kind 'cifar'") != std::string::npos);
  auto split = eval::open_dataset("fashion-mnist:valid");
  CHECK(split.status().message().find("'train' or 'test'") != std::string::npos);
  auto missing = eval::open_dataset("idx:/nonexistent/images.idx");
  CHECK(missing.status().code() == StatusCode::kNotFound);
  CHECK(missing.status().message().find("/nonexistent/images.idx") != std::string::npos);
  eval::DatasetOptions bad;
  bad.normalization.std = 0.0f;
  CHECK_FALSE(eval::open_dataset("fashion-mnist:test", bad).has_value());
}

// Token models (an embedding first) calibrate and evaluate on integer ids.
TEST_CASE("npy datasets of i64 and i32 token ids keep their dtype, limit included, and other dtypes are refused") {
  for (ir::DType dtype : {ir::DType::kI64, ir::DType::kI32}) {
    INFO(ir::dtype_name(dtype));
    ir::Tensor ids = ir::Tensor::zeros(dtype, {3, 4}).value();
    for (int64_t i = 0; i < 12; ++i) {
      if (dtype == ir::DType::kI64) {
        ids.data<int64_t>()[i] = 1000000007LL * i;
      } else {
        ids.data<int32_t>()[i] = static_cast<int32_t>(-7 * i);
      }
    }
    REQUIRE(io::save_npy(ids, scratch("ids.npy")).is_ok());
    eval::DatasetOptions first_two;
    first_two.limit = 2;
    for (const eval::DatasetOptions& options : {eval::DatasetOptions{}, first_two}) {
      auto data = eval::open_dataset("npy:" + scratch("ids.npy"), options);
      REQUIRE(data.has_value());
      CHECK((*data)->size() == (options.limit < 0 ? 3 : 2));
      auto batch = (*data)->batch(1, 1);
      REQUIRE(batch.has_value());
      CHECK(batch->inputs.dtype() == dtype);
      CHECK(batch->inputs.shape() == ir::Shape{1, 4});
      CHECK(batch->inputs.element_as_double(2) == ids.element_as_double(6));
    }
  }
  REQUIRE(io::save_npy(ir::Tensor::zeros(ir::DType::kU8, {2, 2}).value(), scratch("u8.npy")).is_ok());
  auto refused = eval::open_dataset("npy:" + scratch("u8.npy"));
  REQUIRE_FALSE(refused.has_value());
  CHECK_THAT(refused.status().message(), Catch::Contains("u8.npy") && Catch::Contains("f32, i64 or i32"));
}

TEST_CASE("npy datasets and top-1 over a plan") {
  // Samples x in R^2, label = argmax(x); a model computing x itself is 100% accurate.
  ir::Tensor x = ir::Tensor::from_vector(ir::DType::kF32, {4, 2}, std::vector<float>{1, 0, 0, 1, 2, 3, 5, -1});
  ir::Tensor y = ir::Tensor::from_vector(ir::DType::kI64, {4}, std::vector<int64_t>{0, 1, 1, 0});
  REQUIRE(io::save_npy(x, scratch("x.npy")).is_ok());
  REQUIRE(io::save_npy(y, scratch("y.npy")).is_ok());
  auto data = eval::open_dataset("npy:" + scratch("x.npy") + "," + scratch("y.npy"));
  REQUIRE(data.has_value());
  ir::Graph g;
  ir::Value* in = g.add_input("x", ir::ValueType{ir::DType::kF32, {1, 2}, nullptr}).value();
  ir::Value* w = g.add_constant("w", ir::Tensor::from_vector(ir::DType::kF32, {2, 2}, std::vector<float>{1, 0, 0, 1})).value();
  g.set_outputs({g.add_node("linear", {in, w}, {}, "fc").value()->output()});
  auto backend = runtime::make_backend("reference").value();
  auto plan = backend->compile(g).value();
  auto result = eval::evaluate_top1(*plan, **data, 3, false);
  REQUIRE(result.has_value());
  CHECK(result->samples == 4);
  CHECK(result->top1() == Approx(100.0));
  // Flip the weights: every prediction is wrong.
  ir::Graph flipped;
  in = flipped.add_input("x", ir::ValueType{ir::DType::kF32, {1, 2}, nullptr}).value();
  w = flipped.add_constant("w", ir::Tensor::from_vector(ir::DType::kF32, {2, 2}, std::vector<float>{0, 1, 1, 0})).value();
  flipped.set_outputs({flipped.add_node("linear", {in, w}, {}, "fc").value()->output()});
  auto plan2 = backend->compile(flipped).value();
  CHECK(eval::evaluate_top1(*plan2, **data, 2, false)->top1() == Approx(0.0));
  CHECK_FALSE(eval::count_top1(x, {0, 1}).has_value());
}
