// The onednn backend's sparse weight steps: sparse linear / conv layers equal the reference backend, run through
// the sparse kernels above the crossover and through the densified dense primitive below it.
#include <catch2/catch.hpp>
#include <random>

#include "compress/ir/sparse_layout.h"
#include "compress/runtime/reference.h"
#include "compress/runtime/sparse_kernels.h"
#include "onednn/onednn_test_util.h"

using namespace compress;
using compress::test::GraphBuilder;
using ir::DType;
using ir::Tensor;

namespace {

Tensor pruned(ir::Shape shape, double sparsity, uint32_t seed) {
  Tensor t = test::random_f32(shape, seed);
  std::mt19937 rng(seed + 1000);
  std::uniform_real_distribution<double> keep(0.0, 1.0);
  float* d = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (keep(rng) < sparsity) d[i] = 0.0f;
  }
  return t;
}

const runtime::OnednnStep* find_step(const runtime::OnednnPlanReport& report, const std::string& node) {
  for (const auto& s : report.steps) {
    for (const auto& n : s.nodes) {
      if (n == node) return &s;
    }
  }
  return nullptr;
}

constexpr test::Bound kBound{1e-5, 1e-5};

}  // namespace

TEST_CASE("a 90 percent sparse linear runs on the sparse kernel and equals the reference", "[sparse][onednn]") {
  GraphBuilder b;
  ir::Value* x = b.input("x", {1, 300});
  ir::Value* w = b.constant("fc.weight", *ir::to_csr_layout(pruned({129, 300}, 0.9, 1)));
  ir::Value* bias = b.constant("fc.bias", test::random_f32({129}, 2));
  ir::Value* y = b.node("linear", {x, w, bias}, {}, "fc");
  b.outputs({b.node("relu", {y}, {}, "act")});
  for (int64_t batch : {1, 3, 16, 33}) {
    INFO("batch " << batch);
    const test::RunResult r = test::run_both(b.graph, {test::random_f32({batch, 300}, 3)}, test::f32_options());
    CHECK(test::compare(r.got[0], r.want[0], kBound).worst <= 1.0);
    const runtime::OnednnStep* step = find_step(r.report, "fc");
    REQUIRE(step != nullptr);
    CHECK(step->kind == "sparse_linear");
    CHECK(step->implementation == "sparse:" + runtime::sparse::selected_isa());
    CHECK_THAT(step->detail, Catch::Contains("crossover") && Catch::Contains("post-ops: relu"));
    CHECK(r.fallbacks.empty());
  }
}

TEST_CASE("a sparse linear with a fused residual add, every layout of its weight", "[sparse][onednn]") {
  const Tensor dense = pruned({64, 96}, 0.9, 4);
  std::vector<Tensor> layouts = {*ir::to_csr_layout(dense), *ir::to_mask_layout(dense),
                                 *ir::to_block_layout(dense, 4, 8), *ir::to_nm_layout(dense, 2, 4)};
  for (const Tensor& wt : layouts) {
    INFO(wt.sparse_layout()->to_string());
    GraphBuilder b;
    ir::Value* x = b.input("x", {2, 96});
    ir::Value* skip = b.input("skip", {2, 64});
    ir::Value* y = b.node("linear", {x, b.constant("w", wt)}, {}, "fc");
    ir::Value* sum = b.node("add", {y, skip}, {}, "add");
    b.outputs({b.node("relu", {sum}, {}, "act")});
    const test::RunResult r = test::run_both(
        b.graph, {test::random_f32({2, 96}, 5), test::random_f32({2, 64}, 6)}, test::f32_options());
    CHECK(test::compare(r.got[0], r.want[0], kBound).worst <= 1.0);
    const runtime::OnednnStep* step = find_step(r.report, "fc");
    REQUIRE(step != nullptr);
    // About 90% zeros in every layout (2:4 keeps at most the nonzeros there are): above the batch-2 crossover.
    CHECK(step->kind == "sparse_linear");
  }
}

TEST_CASE("a sparse linear below the crossover is densified for the dense primitive", "[sparse][onednn]") {
  GraphBuilder b;
  ir::Value* x = b.input("x", {64, 80});
  ir::Value* w = b.constant("w", *ir::to_csr_layout(pruned({48, 80}, 0.1, 7)));
  b.outputs({b.node("linear", {x, w}, {}, "fc")});
  REQUIRE(runtime::sparse::crossover_sparsity(runtime::sparse::Product::kLinear, 64) > 0.2);
  const test::RunResult r = test::run_both(b.graph, {test::random_f32({64, 80}, 8)}, test::f32_options());
  CHECK(test::compare(r.got[0], r.want[0], kBound).worst <= 1.0);
  const runtime::OnednnStep* step = find_step(r.report, "fc");
  REQUIRE(step != nullptr);
  CHECK(step->kind == "inner_product");
  CHECK_THAT(step->detail, Catch::Contains("densified") && Catch::Contains("crossover"));
}

TEST_CASE("sparse 1x1 and 3x3 convolutions equal the reference", "[sparse][onednn]") {
  struct Case {
    int64_t k, stride, pad;
  };
  for (Case c : {Case{1, 1, 0}, Case{3, 2, 1}, Case{1, 2, 0}}) {
    INFO("kernel " << c.k << " stride " << c.stride);
    GraphBuilder b;
    ir::Value* x = b.input("x", {2, 24, 9, 11});
    ir::Value* w = b.constant("conv.weight", *ir::to_csr_layout(pruned({40, 24, c.k, c.k}, 0.95, 9)));
    ir::Value* bias = b.constant("conv.bias", test::random_f32({40}, 10));
    ir::AttributeMap attrs = {{"stride", std::vector<int64_t>{c.stride, c.stride}},
                              {"padding", std::vector<int64_t>{c.pad, c.pad, c.pad, c.pad}},
                              {"dilation", std::vector<int64_t>{1, 1}},
                              {"groups", int64_t{1}}};
    ir::Value* y = b.node("conv2d", {x, w, bias}, attrs, "conv");
    b.outputs({b.node("relu6", {y}, {}, "act")});
    const test::RunResult r = test::run_both(b.graph, {test::random_f32({2, 24, 9, 11}, 11)}, test::f32_options());
    CHECK(test::compare(r.got[0], r.want[0], kBound).worst <= 1.0);
    const runtime::OnednnStep* step = find_step(r.report, "conv");
    REQUIRE(step != nullptr);
    CHECK(step->kind == "sparse_conv");
  }
}

TEST_CASE("sparse steps give the same bits with 1 and 2 threads", "[sparse][onednn]") {
  GraphBuilder b;
  ir::Value* x = b.input("x", {5, 200});
  ir::Value* w = b.constant("w", *ir::to_csr_layout(pruned({150, 200}, 0.9, 12)));
  b.outputs({b.node("linear", {x, w}, {}, "fc")});
  const Tensor in = test::random_f32({5, 200}, 13);
  runtime::OnednnOptions one = test::f32_options(), two = test::f32_options();
  one.threads = 1;
  two.threads = 2;
  const test::RunResult r1 = test::run_both(b.graph, {in}, one);
  const test::RunResult r2 = test::run_both(b.graph, {in}, two);
  CHECK(r1.got[0].bitwise_equal(r2.got[0]));
}

TEST_CASE("a sparse conv followed by batch norm stays sparse after folding", "[sparse][onednn]") {
  GraphBuilder b;
  ir::Value* x = b.input("x", {1, 32, 10, 10});
  ir::Value* w = b.constant("conv.weight", *ir::to_csr_layout(pruned({48, 32, 1, 1}, 0.95, 14)));
  ir::Value* y = b.node("conv2d", {x, w}, {}, "conv");
  ir::Value* bn = b.node("batch_norm",
                         {y, b.constant("gamma", test::random_f32({48}, 15, 0.5f, 1.5f)),
                          b.constant("beta", test::random_f32({48}, 16)), b.constant("mean", test::random_f32({48}, 17)),
                          b.constant("var", test::random_f32({48}, 18, 0.5f, 2.0f))},
                         {}, "bn");
  b.outputs({b.node("relu", {bn}, {}, "act")});
  const test::RunResult r = test::run_both(b.graph, {test::random_f32({1, 32, 10, 10}, 19)}, test::f32_options());
  CHECK(test::compare(r.got[0], r.want[0], kBound).worst <= 1.0);
  const runtime::OnednnStep* step = find_step(r.report, "conv");
  REQUIRE(step != nullptr);
  CHECK(step->kind == "sparse_conv");
}
