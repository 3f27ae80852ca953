#include <catch2/catch.hpp>

#include "compress/eval/dataset.h"
#include "compress/eval/metrics.h"
#include "compress/io/cmf.h"
#include "compress/runtime/backend.h"
#include "fashion_data.h"

using namespace compress;

// The committed Fashion-MNIST fixture keeps the accuracy recorded in
// tests/fixtures/models/README.md on the real test set (the reference backend
// is deterministic, so the count is exact).
TEST_CASE("fashion_cnn.cmf fixture: 90.35% top-1 on Fashion-MNIST test") {
  auto graph = io::load_cmf(test::fashion_cnn_path());
  INFO((graph ? "" : graph.status().message()));
  REQUIRE(graph.has_value());
  eval::DatasetOptions options;
  options.normalization = {0.2860f, 0.3530f};
  auto test = eval::open_dataset("fashion-mnist:test", options);
  REQUIRE(test.has_value());
  auto backend = runtime::make_backend("reference").value();
  auto plan = backend->compile(*graph).value();
  auto result = eval::evaluate_top1(*plan, **test, 500, false);
  REQUIRE(result.has_value());
  WARN("fashion_cnn.cmf top-1 " << result->top1() << "% (" << result->correct << "/" << result->samples << ")");
  CHECK(result->samples == 10000);
  CHECK(result->correct == 9035);
}
