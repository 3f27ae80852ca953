// Note [Releasing copied weights] (src/runtime/onednn/dnnl_util.h): the
// backend hands the pages of weights it copied back to the kernel when they
// come from a mapped .cmf file. That must never change what any backend
// computes, nor a weight a pass edited in place after loading.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "compress/io/cmf.h"
#include "compress/runtime/reference.h"
#include "onednn_test_util.h"

namespace compress::test {
namespace {

namespace fs = std::filesystem;
using ir::Value;

const Bound kGemm{1e-5, 2e-6};

// conv (folded with a batch norm by the backend) -> relu -> conv, with
// weights large enough to span whole pages.
ir::Graph conv_bn_conv() {
  GraphBuilder g;
  Value* x = g.input("x", {1, 8, 10, 10});
  Value* y = g.node("conv2d", {x, g.constant("w1", random_f32({64, 8, 3, 3}, 1, -0.2f, 0.2f))},
                    {{"padding", std::vector<int64_t>{1, 1, 1, 1}}}, "conv1");
  y = g.node("batch_norm",
             {y, g.constant("gamma", random_f32({64}, 2, 0.5f, 1.5f)), g.constant("beta", random_f32({64}, 3)),
              g.constant("mean", random_f32({64}, 4)), g.constant("var", random_f32({64}, 5, 0.5f, 2.0f))},
             {}, "bn1");
  y = g.node("relu", {y});
  y = g.node("conv2d", {y, g.constant("w2", random_f32({32, 64, 3, 3}, 6, -0.1f, 0.1f))},
             {{"padding", std::vector<int64_t>{1, 1, 1, 1}}}, "conv2");
  g.outputs({y});
  return std::move(g.graph);
}

ir::Graph saved_and_mapped(const ir::Graph& g, const fs::path& path, const std::string& weight = "w2") {
  REQUIRE(io::save_cmf(g, path.string()).is_ok());
  auto loaded = io::load_cmf(path.string());  // mmap is the default
  REQUIRE(loaded.has_value());
  REQUIRE(loaded->find_value(weight)->constant().storage()->is_borrowed());
  return std::move(*loaded);
}

std::vector<ir::Tensor> run_reference(const ir::Graph& g, const ir::Tensor& x) {
  auto plan = runtime::make_reference_backend()->compile(g);
  REQUIRE(plan.has_value());
  auto out = (*plan)->run({x});
  REQUIRE(out.has_value());
  return std::move(*out);
}

}  // namespace

TEST_CASE("weights of a mapped .cmf stay what they were after the onednn backend releases their pages") {
  const fs::path dir = fs::temp_directory_path() / ("compress_mapped_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const ir::Graph original = conv_bn_conv();
  const ir::Tensor x = random_f32({1, 8, 10, 10}, 9);
  const std::vector<ir::Tensor> want = run_reference(original, x);

  SECTION("as loaded: onednn matches the reference, and the reference still does afterwards") {
    const ir::Graph g = saved_and_mapped(original, dir / "model.cmf");
    const RunResult r = run_both(g, {x});  // compiles (and releases), then runs both backends
    CHECK(compare(r.got[0], r.want[0], kGemm).worst <= 1.0);
    CHECK(compare(r.want[0], want[0], Bound{0, 0}).worst == 0);
    // The pages are read back from the file: every weight is intact.
    for (const char* name : {"w1", "w2"}) {
      INFO(name);
      const ir::Tensor& before = original.find_value(name)->constant();
      const ir::Tensor& after = g.find_value(name)->constant();
      CHECK(std::equal(before.data<float>(), before.data<float>() + before.numel(), after.data<float>()));
    }
    CHECK(compare(run_reference(g, x)[0], want[0], Bound{0, 0}).worst == 0);
  }

  SECTION("a weight edited in place after loading keeps the edit") {
    ir::Graph g = saved_and_mapped(original, dir / "edited.cmf");
    // As a pass may do: write into the mapped bytes (a private copy-on-write page).
    float* w2 = const_cast<float*>(g.find_value("w2")->constant().data<float>());
    const int64_t middle = g.find_value("w2")->constant().numel() / 2;
    w2[middle] = 5.0f;
    w2[middle + 1] = -5.0f;
    const RunResult r = run_both(g, {x});
    CHECK(g.find_value("w2")->constant().data<float>()[middle] == 5.0f);
    CHECK(g.find_value("w2")->constant().data<float>()[middle + 1] == -5.0f);
    CHECK(compare(r.got[0], r.want[0], kGemm).worst <= 1.0);
    CHECK(compare(r.want[0], want[0], Bound{0, 0}).worst > 0);  // the edit reached both backends
  }
  fs::remove_all(dir);
}

TEST_CASE("int8 weights of a mapped .cmf: bit-exact after their pages are released, edits kept") {
  const fs::path dir = fs::temp_directory_path() / ("compress_mapped_q_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  GraphBuilder b;
  auto xq = per_tensor(ir::DType::kU8, 0.05f, 120);
  Value* x = b.input("x", {4, 512}, ir::DType::kU8, xq);
  std::vector<float> scales(256, 0.004f);
  auto wq = per_channel(ir::DType::kI8, scales, std::vector<int32_t>(256, 0));
  b.outputs({b.node("qlinear", {x, b.constant("w", random_int8_weights({256, 512}, 21, *wq, 100))},
                    {{"out_dtype", std::string("u8")}, {"out_scale", 0.2}, {"out_zero_point", int64_t{10}}})});
  const ir::Tensor input = random_quantized({4, 512}, 22, *xq, 0, 255);
  ir::Graph g = saved_and_mapped(b.graph, dir / "q.cmf", "w");
  int8_t* w = const_cast<int8_t*>(g.find_value("w")->constant().data<int8_t>());
  const int64_t middle = g.find_value("w")->constant().numel() / 2;
  w[middle] = 127;
  const RunResult r = run_both(g, {input});  // the reference runs after onednn released the pages
  CHECK(compare(r.got[0], r.want[0], Bound{0, 0}).mismatched == 0);
  CHECK(g.find_value("w")->constant().data<int8_t>()[middle] == 127);
  const ir::Tensor& before = b.graph.find_value("w")->constant();
  CHECK(std::equal(before.data<int8_t>(), before.data<int8_t>() + middle, g.find_value("w")->constant().data<int8_t>()));
  fs::remove_all(dir);
}

}  // namespace compress::test
