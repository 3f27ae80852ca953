#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <unistd.h>

#include "compress/ir/sparse_layout.h"
#include "compress/ir/verifier.h"
#include "compress/prune/magnitude_pass.h"
#include "prune_test_util.h"

using namespace compress;
using namespace compress::prune_test;

namespace {

const std::vector<std::string> kLayers = {"conv1", "conv2", "fc1", "fc2"};

pass::PassResult run_prune(ir::Graph& g, const std::vector<std::pair<std::string, std::string>>& options) {
  auto p = make_pass("prune.magnitude", options);
  REQUIRE(p.has_value());
  pass::PassContext ctx;
  ctx.progress = false;
  auto r = (*p)->run(g, ctx);
  if (!r.has_value()) FAIL(r.status().to_string());
  REQUIRE(ir::verify(g).is_ok());
  return *r;
}

// Every pruned original magnitude <= every kept one, and kept weights unchanged.
void check_magnitude_order(const std::vector<float>& before, const std::vector<float>& after) {
  float max_pruned = 0.0f, min_kept = std::numeric_limits<float>::max();
  for (size_t i = 0; i < before.size(); ++i) {
    if (after[i] == 0.0f) {
      max_pruned = std::max(max_pruned, std::fabs(before[i]));
    } else {
      CHECK(after[i] == before[i]);
      min_kept = std::min(min_kept, std::fabs(before[i]));
    }
  }
  CHECK(max_pruned <= min_kept);
}

}  // namespace

TEST_CASE("prune.magnitude: exact sparsity per layer, smallest magnitudes, shape kept, CSR layout") {
  const ir::Graph dense = test::fashion_cnn();
  for (double ratio : {0.5, 0.37, 0.9}) {
    INFO("ratio " << ratio);
    ir::Graph g = dense.clone();
    const pass::PassResult r = run_prune(g, {{"ratio", std::to_string(ratio)}});
    CHECK(r.changed);
    for (const std::string& name : kLayers) {
      INFO(name);
      const ir::Tensor& t = g.find_node(name)->input(1)->constant();
      CHECK(t.shape() == dense.find_node(name)->input(1)->shape());
      REQUIRE(t.sparse_layout() != nullptr);
      CHECK(t.sparse_layout()->format == ir::SparseFormat::kCsr);
      const std::vector<float> before = weight_of(dense, name), after = dense_values(t);
      CHECK(zeros(after) == std::llround(ratio * static_cast<double>(before.size())));
      CHECK(t.stored_count() == static_cast<int64_t>(before.size()) - zeros(after));
      CHECK(r.layers.at(name).at("sparsity") == Approx(static_cast<double>(zeros(after)) / before.size()));
      check_magnitude_order(before, after);
    }
  }
}

TEST_CASE("prune.magnitude: global scope reaches the total exactly with one threshold") {
  const ir::Graph dense = test::fashion_cnn();
  ir::Graph g = dense.clone();
  const pass::PassResult r = run_prune(g, {{"ratio", "0.8"}, {"scope", "global"}, {"format", "mask"}});
  std::vector<float> before, after;
  int64_t per_layer_differs = 0;
  for (const std::string& name : kLayers) {
    const std::vector<float> b = weight_of(dense, name), a = weight_of(g, name);
    before.insert(before.end(), b.begin(), b.end());
    after.insert(after.end(), a.begin(), a.end());
    CHECK(g.find_node(name)->input(1)->constant().sparse_layout()->format == ir::SparseFormat::kMask);
    per_layer_differs += zeros(a) != std::llround(0.8 * static_cast<double>(a.size())) ? 1 : 0;
  }
  CHECK(zeros(after) == std::llround(0.8 * static_cast<double>(before.size())));
  CHECK(r.counters.at("sparsity") == Approx(0.8).margin(1e-6));
  check_magnitude_order(before, after);
  CHECK(per_layer_differs > 0);  // a global threshold does not prune every layer alike
}

TEST_CASE("prune.magnitude: per-layer overrides, exclusions, min size and op filter") {
  const ir::Graph dense = test::fashion_cnn();
  ir::Graph g = dense.clone();
  run_prune(g, {{"ratio", "0.5"}, {"layers", "{\"fc*\": 0.75, fc1: 0.1}"}, {"exclude", "[conv1]"}});
  CHECK(g.find_node("conv1")->input(1)->constant().bitwise_equal(dense.find_node("conv1")->input(1)->constant()));
  CHECK(zeros(weight_of(g, "conv2")) == 2304);
  CHECK(zeros(weight_of(g, "fc1")) == std::llround(0.75 * 200704));  // the first matching pattern wins
  CHECK(zeros(weight_of(g, "fc2")) == 960);

  ir::Graph small = dense.clone();
  run_prune(small, {{"ratio", "0.5"}, {"min_params", "1000"}});
  CHECK(zeros(weight_of(small, "conv1")) == 0);
  CHECK(zeros(weight_of(small, "fc2")) == 640);

  ir::Graph linear_only = dense.clone();
  run_prune(linear_only, {{"ratio", "0.5"}, {"ops", "[linear]"}});
  CHECK(zeros(weight_of(linear_only, "conv2")) == 0);
  CHECK(zeros(weight_of(linear_only, "fc1")) == 100352);
}

TEST_CASE("prune.magnitude: comparison row prunes each output row by its own magnitudes") {
  const ir::Graph dense = test::fashion_cnn();
  ir::Graph g = dense.clone();
  run_prune(g, {{"ratio", "0.3"}, {"comparison", "row"}});
  for (const std::string& name : kLayers) {
    INFO(name);
    const std::vector<float> before = weight_of(dense, name), after = weight_of(g, name);
    int64_t rows = 0, cols = 0;
    ir::matrix_dims(g.find_node(name)->input(1)->shape(), &rows, &cols);
    CHECK(zeros(after) == std::llround(0.3 * static_cast<double>(rows * cols)));
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<float> b(before.begin() + r * cols, before.begin() + (r + 1) * cols);
      const std::vector<float> a(after.begin() + r * cols, after.begin() + (r + 1) * cols);
      const int64_t z = zeros(a);
      CHECK(std::abs(static_cast<double>(z) - 0.3 * static_cast<double>(cols)) < 1.0);
      check_magnitude_order(b, a);
    }
  }
  auto bad = make_pass("prune.magnitude", {{"ratio", "0.5"}, {"comparison", "row"}, {"criterion", "sparsegpt"}});
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.status().message(), Catch::Contains("comparison"));
}

TEST_CASE("prune.magnitude: iterative steps end where one shot does") {
  const ir::Graph dense = test::fashion_cnn();
  ir::Graph once = dense.clone(), steps = dense.clone();
  run_prune(once, {{"ratio", "0.7"}});
  run_prune(steps, {{"ratio", "0.7"}, {"steps", "4"}});
  for (const std::string& name : kLayers) {
    CHECK(weight_of(once, name) == weight_of(steps, name));
  }
}

TEST_CASE("prune.magnitude: bad options are clear errors and leave the graph unchanged") {
  const ir::Graph dense = test::fashion_cnn();
  struct Bad {
    std::vector<std::pair<std::string, std::string>> options;
    std::string says;
  };
  const std::vector<Bad> at_parse = {
      {{{"ratio", "1.0"}}, "ratio"},
      {{{"ratio", "-0.1"}}, "ratio"},
      {{{"ratio", ".nan"}}, "ratio"},
      {{{"ratio", "0.5"}, {"layers", "{fc1: 1.5}"}}, "layers"},
      {{{"ratio", "0.5"}, {"criterion", "obs"}}, "criterion"},
      {{{"ratio", "0.5"}, {"scope", "global"}, {"criterion", "wanda"}}, "scope"},
      {{{"ratio", "0.5"}, {"ops", "[conv3d]"}}, "conv3d"},
      {{{"ratoi", "0.5"}}, "ratoi"},
  };
  for (const Bad& bad : at_parse) {
    INFO(bad.options.front().first << " = " << bad.options.back().second);
    auto p = make_pass("prune.magnitude", bad.options);
    REQUIRE_FALSE(p.has_value());
    CHECK_THAT(p.status().message(), Catch::Contains(bad.says));
  }
  const std::vector<Bad> at_run = {
      {{{"ratio", "0.5"}, {"layers", "{\"layer9.*\": 0.3}"}}, "'layer9.*'"},
      {{{"ratio", "0.5"}, {"exclude", "[conv1, fc_nope]"}}, "'fc_nope'"},
      {{{"ratio", "0.5"}, {"criterion", "wanda"}}, "calibration"},
  };
  for (const Bad& bad : at_run) {
    INFO(bad.says);
    ir::Graph g = dense.clone();
    auto p = make_pass("prune.magnitude", bad.options);
    REQUIRE(p.has_value());
    pass::PassContext ctx;
    ctx.progress = false;
    auto r = (*p)->run(g, ctx);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.status().message(), Catch::Contains(bad.says));
    CHECK(same_constants(g, dense));
  }
}

TEST_CASE("prune.magnitude: the pruned model saves, loads and runs on both backends") {
  ir::Graph csr = test::fashion_cnn(), mask = test::fashion_cnn();
  run_prune(csr, {{"ratio", "0.5"}});
  run_prune(mask, {{"ratio", "0.5"}, {"format", "mask"}});
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("compress_prune_" + std::to_string(::getpid()) + ".cmf");
  REQUIRE(io::save_cmf(csr, file.string()).is_ok());
  auto loaded = io::load_cmf(file.string());
  std::filesystem::remove(file);
  REQUIRE(loaded.has_value());
  REQUIRE(same_constants(*loaded, csr));
  const ir::Tensor x = test::fashion_data("test", 16)->batch(0, 16).value().inputs;
  const ir::Tensor ref = run_graph(*loaded, "reference", x)[0];
  // The same zeros in either layout give the same logits.
  CHECK(mse(ref, run_graph(mask, "reference", x)[0]) == 0.0);
  CHECK(mse(ref, run_graph(test::fashion_cnn(), "reference", x)[0]) > 0.0);
  if (has_backend("onednn")) {
    CHECK(mse(ref, run_graph(*loaded, "onednn", x)[0]) < 1e-8);
    CHECK(mse(ref, run_graph(mask, "onednn", x)[0]) < 1e-8);
  }
}
