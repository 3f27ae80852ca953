#include <catch2/catch.hpp>

#include <algorithm>

#include "compress/ir/sparse_layout.h"
#include "compress/ir/verifier.h"
#include "compress/prune/masks.h"
#include "compress/prune/prunable_layers.h"
#include "prune_test_util.h"

using namespace compress;
using namespace compress::prune_test;

namespace {

pass::PassResult prune_nm(ir::Graph& g, const std::vector<std::pair<std::string, std::string>>& options,
                          const eval::DataSource* calib = nullptr) {
  auto p = make_pass("prune.nm", options);
  REQUIRE(p.has_value());
  pass::PassContext ctx;
  ctx.progress = false;
  ctx.calibration = calib;
  auto r = (*p)->run(g, ctx);
  if (!r.has_value()) FAIL(r.status().to_string());
  REQUIRE(ir::verify(g).is_ok());
  return *r;
}

// The property checked group by group on the canonical view, independent of the pass's own mask code.
void check_groups(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t n, int64_t m) {
  REQUIRE(cols % m == 0);
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; c += m) {
      int64_t nonzero = 0;
      for (int64_t j = 0; j < m; ++j) nonzero += w[static_cast<size_t>(r * cols + c + j)] != 0.0f ? 1 : 0;
      bad += nonzero > n ? 1 : 0;
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("prune.nm: 2:4 and 4:8 hold in every group of every layer, kept = largest, nm layout") {
  const ir::Graph dense = test::fashion_cnn();
  for (auto [n, m] : {std::pair<int64_t, int64_t>{2, 4}, {4, 8}, {1, 4}}) {
    INFO(n << ":" << m);
    ir::Graph g = dense.clone();
    const pass::PassResult r = prune_nm(g, {{"pattern", std::to_string(n) + ":" + std::to_string(m)}});
    // conv1 has 9 input columns per filter: it cannot hold the pattern.
    CHECK(r.layers.at("conv1").count("skipped") == 1);
    CHECK(g.find_node("conv1")->input(1)->constant().bitwise_equal(dense.find_node("conv1")->input(1)->constant()));
    for (const char* name : {"conv2", "fc1", "fc2"}) {
      INFO(name);
      const ir::Tensor& t = g.find_node(name)->input(1)->constant();
      REQUIRE(t.sparse_layout() != nullptr);
      CHECK(t.sparse_layout()->format == ir::SparseFormat::kNM);
      CHECK(t.sparse_layout()->n == n);
      CHECK(t.sparse_layout()->m == m);
      int64_t rows = 0, cols = 0;
      ir::matrix_dims(t.shape(), &rows, &cols);
      const std::vector<float> before = weight_of(dense, name), after = dense_values(t);
      check_groups(after, rows, cols, n, m);
      CHECK(zeros(after) == rows * cols / m * (m - n));
      // Within each group the kept weights are the largest and unchanged.
      for (int64_t i = 0; i < rows * cols; i += m) {
        float max_pruned = 0.0f, min_kept = 1e30f;
        for (int64_t j = i; j < i + m; ++j) {
          if (after[static_cast<size_t>(j)] == 0.0f) {
            max_pruned = std::max(max_pruned, std::fabs(before[static_cast<size_t>(j)]));
          } else {
            min_kept = std::min(min_kept, std::fabs(before[static_cast<size_t>(j)]));
            if (after[static_cast<size_t>(j)] != before[static_cast<size_t>(j)]) FAIL("kept weight changed");
          }
        }
        if (max_pruned > min_kept) FAIL("group " << i / m << " of " << name << " kept a smaller weight");
      }
    }
  }
}

TEST_CASE("prune.nm: a matmul weight [in, out] gets its groups along the input dimension") {
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {3, 8}, nullptr}).value();
  std::vector<float> wv(8 * 6);
  for (size_t i = 0; i < wv.size(); ++i) wv[i] = static_cast<float>((i * 37) % 17) - 8.0f;
  ir::Value* w = g.add_constant("w", ir::Tensor::from_vector(ir::DType::kF32, {8, 6}, wv)).value();
  ir::Node* mm = g.add_node("matmul", {x, w}, {}, "proj").value();
  g.set_outputs({mm->output()});
  prune_nm(g, {{"pattern", "2:4"}});
  const ir::Tensor& t = g.find_node("proj")->input(1)->constant();
  CHECK(t.sparse_layout()->format == ir::SparseFormat::kCsr);  // nm cannot describe column groups
  const std::vector<float> after = dense_values(t);
  for (int64_t col = 0; col < 6; ++col) {
    for (int64_t k0 = 0; k0 < 8; k0 += 4) {
      int64_t nonzero = 0;
      for (int64_t k = k0; k < k0 + 4; ++k) nonzero += after[static_cast<size_t>(k * 6 + col)] != 0.0f ? 1 : 0;
      CHECK(nonzero <= 2);
    }
  }
  CHECK(zeros(after) >= 24);
}

TEST_CASE("prune.nm: bad patterns are errors naming the option") {
  for (const char* bad : {"3:2", "2:2", "x"}) {
    auto p = make_pass("prune.nm", {{"pattern", bad}});
    REQUIRE_FALSE(p.has_value());
    CHECK_THAT(p.status().message(), Catch::Contains("pattern"));
    CHECK_THAT(p.status().message(), Catch::Contains(bad));
  }
  const ir::Graph dense = test::fashion_cnn();
  ir::Graph g = dense.clone();
  auto p = make_pass("prune.nm", {{"exclude", "[nothing_here]"}});
  REQUIRE(p.has_value());
  pass::PassContext ctx;
  ctx.progress = false;
  auto r = (*p)->run(g, ctx);
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("'nothing_here'"));
  CHECK(same_constants(g, dense));
}
