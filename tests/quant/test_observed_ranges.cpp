// Observed ranges stored in the model by quant.ptq survive .cmf save/load.
#include <catch2/catch.hpp>

#include <cstdio>

#include "compress/io/cmf.h"
#include "compress/ir/verifier.h"
#include "compress/quant/calibration.h"
#include "compress/quant/layer_plan.h"
#include "compress/quant/observed_ranges.h"
#include "quant_test_util.h"

using namespace compress;
using namespace compress::quant_test;

TEST_CASE("observed ranges: quant.ptq stores them, they equal calibrate() and survive .cmf save and load") {
  // x -> fc1 -> relu -> fc2; samples (x0, x1) with hand-known min/max per input column.
  ir::Graph g;
  ir::Value* x = g.add_input("x", {ir::DType::kF32, {1, 2}, nullptr}).value();
  ir::Value* w1 = g.add_constant("w1", ir::Tensor::from_vector<float>(ir::DType::kF32, {2, 2}, std::vector<float>{1, 0, 0, -2}))
                      .value();
  ir::Node* fc1 = g.add_node("linear", {x, w1}, {}, "fc1").value();
  ir::Node* relu = g.add_node("relu", {fc1->output()}, {}, "relu").value();
  ir::Node* fc2 = g.add_node("linear", {relu->output(), g.add_constant("w2", random_tensor({3, 2}, 1)).value()}, {}, "fc2")
                      .value();
  g.set_outputs({fc2->output()});
  ir::Tensor samples =
      ir::Tensor::from_vector<float>(ir::DType::kF32, {4, 2}, std::vector<float>{1, 2, -3, 0.5f, 0.25f, -4, 2, 1});
  auto data = eval::from_tensor(samples, {}, "four").value();

  for (bool fake : {false, true}) {
    quant::PtqPass::Options opts;
    opts.fake_quant = fake;
    const ir::Graph q = ptq(g, *data, opts);
    auto stored = quant::observed_ranges(q);
    REQUIRE(stored.has_value());
    // x: all of -4..2; relu output (fused into fc1): relu(x0) and relu(-2 x1) = {1, 0, 0.25, 2} and {0, 0, 8, 0}.
    REQUIRE(stored->count("x") == 1);
    CHECK(stored->at("x").min == -4.0f);
    CHECK(stored->at("x").max == 2.0f);
    REQUIRE(stored->count("relu") == 1);
    CHECK(stored->at("relu").min == 0.0f);
    CHECK(stored->at("relu").max == 8.0f);
    quant::CalibrationOptions copts;
    copts.progress = false;
    auto calib = quant::calibrate(g, quant::values_to_observe(g, quant::quantizable_nodes(g)), *data, copts).value();
    CHECK(stored->size() == calib.ranges.size());
    for (const auto& [name, r] : calib.ranges) {
      CHECK(stored->at(name).min == r.min);
      CHECK(stored->at(name).max == r.max);
    }

    const std::string path = "test_observed_ranges.cmf";
    REQUIRE(io::save_cmf(q, path).is_ok());
    auto loaded = io::load_cmf(path);
    std::remove(path.c_str());
    REQUIRE(loaded.has_value());
    REQUIRE(ir::verify(*loaded).is_ok());
    auto again = quant::observed_ranges(*loaded);
    REQUIRE(again.has_value());
    CHECK(again->size() == stored->size());
    CHECK(again->at("relu").max == 8.0f);
    // The stored annotations do not disturb execution on either backend.
    const ir::Tensor xs = random_tensor({5, 2}, 2);
    if (!fake) CHECK(run_graph(*loaded, "reference", xs)[0].bitwise_equal(run_graph(*loaded, "onednn", xs)[0]));
  }
}

TEST_CASE("observed ranges: replacing, and malformed or non-finite entries are errors") {
  ir::Graph g;
  REQUIRE(quant::store_observed_ranges(g, {{"a", {-1.0f, 2.0f}}}).is_ok());
  REQUIRE(quant::store_observed_ranges(g, {{"a", {0.0f, 3.0f}}}).is_ok());
  CHECK(quant::observed_ranges(g)->at("a").max == 3.0f);
  CHECK(g.annotations().size() == 1);
  CHECK(g.constants().empty());
  CHECK_FALSE(quant::store_observed_ranges(g, {{"b", {0.0f, std::numeric_limits<float>::quiet_NaN()}}}).is_ok());
  CHECK_FALSE(quant::store_observed_ranges(g, {{"b", {1.0f, 0.0f}}}).is_ok());
  CHECK(g.annotations().size() == 1);
  REQUIRE(g.annotations().set(ir::kObservedRangeKind, ir::AnnotationTarget::graph("c"), random_tensor({3}, 1)).is_ok());
  auto bad = quant::observed_ranges(g);
  REQUIRE_FALSE(bad.has_value());
  CHECK_THAT(bad.status().message(), Catch::Contains("observed range of 'c'"));
}

TEST_CASE("observed ranges: a version-1 .cmf file's observed_range/* constants are read as observed ranges") {
  // tests/io/fixtures/README.md: written by the version-1 writer.
  auto g = io::load_cmf(std::string(COMPRESS_TEST_SOURCE_DIR) + "/tests/io/fixtures/v1_annotated.cmf");
  REQUIRE(g.has_value());
  const auto ranges = quant::observed_ranges(*g);
  REQUIRE(ranges.has_value());
  REQUIRE(ranges->size() == 2);
  CHECK(ranges->at("x").min == -1.0f);
  CHECK(ranges->at("x").max == 2.0f);
  CHECK(ranges->at("relu").min == 0.0f);
  CHECK(ranges->at("relu").max == 3.5f);
  CHECK(g->find_value("observed_range/x") == nullptr);
}
