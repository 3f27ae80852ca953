// Recipe parsing: structure, relative paths, and errors that name the file, line and key.
#include <catch2/catch.hpp>

#include "compress/pass/recipe.h"
#include "compress/quant/ptq_pass.h"
#include "compress/transforms/fold_batch_norm.h"

using namespace compress;

namespace {

const char* kGood = R"(model: models/net.cmf
output: /tmp/out.cmf
seed: 7
threads: 2
data:
  calibration: {spec: "fashion-mnist:train", mean: 0.286, std: 0.353, samples: 64}
  evaluation: "npy:x.npy,/abs/y.npy"
stages:
  - transforms.fold_batch_norm
  - quant.ptq:
      observer: percentile
      samples: 64
report:
  out: rep
  batch_sizes: [1, 8]
)";

pass::PassRegistry registry() {
  pass::PassRegistry r;
  REQUIRE(transforms::register_transform_passes(r).is_ok());
  REQUIRE(quant::register_quant_passes(r).is_ok());
  return r;
}

// The error of parsing (or, when parsing succeeds, of creating the passes).
std::string error_of(const std::string& text) {
  auto recipe = pass::parse_recipe(text, "dir/r.yaml");
  if (!recipe.has_value()) return recipe.status().message();
  auto passes = pass::create_passes(*recipe, registry());
  REQUIRE_FALSE(passes.has_value());
  return passes.status().message();
}

}  // namespace

TEST_CASE("a recipe parses with paths relative to its folder", "[recipe]") {
  auto recipe = pass::parse_recipe(kGood, "dir/r.yaml");
  REQUIRE(recipe.has_value());
  CHECK(recipe->model == "dir/models/net.cmf");
  CHECK(recipe->output == "/tmp/out.cmf");
  CHECK(recipe->seed == 7);
  CHECK(recipe->threads == 2);
  REQUIRE(recipe->calibration);
  CHECK(recipe->calibration->spec == "fashion-mnist:train");
  CHECK(recipe->calibration->samples == 64);
  CHECK(recipe->calibration->std == Approx(0.353f));
  REQUIRE(recipe->evaluation);
  CHECK(recipe->evaluation->spec == "npy:dir/x.npy,/abs/y.npy");
  CHECK_FALSE(recipe->training);
  REQUIRE(recipe->stages.size() == 2);
  CHECK(recipe->stages[1].pass == "quant.ptq");
  REQUIRE(recipe->report);
  CHECK(recipe->report->out_dir == "dir/rep");
  CHECK(recipe->report->batch_sizes == std::vector<int64_t>{1, 8});
  auto passes = pass::create_passes(*recipe, registry());
  REQUIRE(passes.has_value());
  REQUIRE(passes->size() == 2);
  CHECK((*passes)[1]->name() == "quant.ptq");
}

TEST_CASE("recipe errors name the file, line and key", "[recipe]") {
  SECTION("not YAML") {
    CHECK_THAT(error_of("model: [unclosed\nstages: x\n"), Catch::Contains("dir/r.yaml:") && Catch::Contains("YAML"));
  }
  SECTION("not a mapping") { CHECK_THAT(error_of("- a\n- b\n"), Catch::Contains("must be a mapping")); }
  SECTION("unknown top-level key") {
    CHECK_THAT(error_of("modle: x.cmf\nstages: [quant.ptq]\n"),
               Catch::Contains("dir/r.yaml:1:8") && Catch::Contains("'modle'") && Catch::Contains("unknown option"));
  }
  SECTION("missing stages") { CHECK_THAT(error_of("model: x.cmf\n"), Catch::Contains("missing key 'stages'")); }
  SECTION("empty stages") { CHECK_THAT(error_of("stages: []\n"), Catch::Contains("non-empty list")); }
  SECTION("a stage with two names") {
    CHECK_THAT(error_of("stages:\n  - {a: {}, b: {}}\n"), Catch::Contains("dir/r.yaml:2:5") && Catch::Contains("stage 1"));
  }
  SECTION("unknown pass") {
    CHECK_THAT(error_of("stages:\n  - transforms.fold_batch_norm\n  - quant.nope\n"),
               Catch::Contains("dir/r.yaml:3:5") && Catch::Contains("stage 2") && Catch::Contains("'quant.nope'") &&
                   Catch::Contains("quant.ptq"));
  }
  SECTION("unknown option of a pass") {
    CHECK_THAT(error_of("stages:\n  - quant.ptq:\n      observr: minmax\n"),
               Catch::Contains("dir/r.yaml:3:16") && Catch::Contains("stage 1 (quant.ptq)") &&
                   Catch::Contains("'observr'") && Catch::Contains("observer"));
  }
  SECTION("wrong type") {
    CHECK_THAT(error_of("stages:\n  - quant.ptq: {samples: many}\n"),
               Catch::Contains("dir/r.yaml:2:26") && Catch::Contains("'samples'") && Catch::Contains("'many'"));
  }
  SECTION("out of range") {
    CHECK_THAT(error_of("stages:\n  - quant.ptq: {samples: 0}\n"), Catch::Contains("'samples'") && Catch::Contains(">= 1") ||
                                                                      Catch::Contains("[1, "));
  }
  SECTION("bits") {
    CHECK_THAT(error_of("stages:\n  - quant.ptq: {bits: 0}\n"),
               Catch::Contains("dir/r.yaml:2:23") && Catch::Contains("'bits'") && Catch::Contains("[2, 16]"));
    CHECK_THAT(error_of("stages:\n  - quant.ptq: {weight_bits: 4}\n"),
               Catch::Contains("'weight_bits'") && Catch::Contains("8-bit") && Catch::Contains("4 bits"));
  }
  SECTION("bad choice") {
    CHECK_THAT(error_of("stages:\n  - quant.ptq: {observer: magic}\n"),
               Catch::Contains("'magic'") && Catch::Contains("minmax"));
  }
  SECTION("options that are not a mapping") {
    CHECK_THAT(error_of("stages:\n  - quant.ptq: [1, 2]\n"), Catch::Contains("stage 1 (quant.ptq)") &&
                                                               Catch::Contains("mapping"));
  }
  SECTION("dataset without spec") {
    CHECK_THAT(error_of("data:\n  calibration: {mean: 0.5}\nstages: [quant.ptq]\n"),
               Catch::Contains("dir/r.yaml:2:16") && Catch::Contains("data.calibration") && Catch::Contains("'spec'"));
  }
  SECTION("unknown dataset role") {
    CHECK_THAT(error_of("data:\n  calib: x\nstages: [quant.ptq]\n"),
               Catch::Contains("dir/r.yaml:2:3") && Catch::Contains("'calib'"));
  }
  SECTION("NaN and zero std") {
    CHECK_THAT(error_of("data:\n  evaluation: {spec: x, mean: .nan}\nstages: [quant.ptq]\n"), Catch::Contains("'mean'"));
    CHECK_THAT(error_of("data:\n  evaluation: {spec: x, std: 0}\nstages: [quant.ptq]\n"), Catch::Contains("'std'"));
  }
  SECTION("report without out, bad batch size, bad backend") {
    CHECK_THAT(error_of("stages: [quant.ptq]\nreport: {backend: onednn}\n"), Catch::Contains("report") &&
                                                                                Catch::Contains("'out'"));
    CHECK_THAT(error_of("stages: [quant.ptq]\nreport: {out: r, batch_sizes: [1, 0]}\n"),
               Catch::Contains("batch_sizes"));
    CHECK_THAT(error_of("stages: [quant.ptq]\nreport: {out: r, backend: gpu}\n"), Catch::Contains("'gpu'"));
  }
}

TEST_CASE("load_recipe names a missing file", "[recipe]") {
  auto r = pass::load_recipe("/nonexistent/recipe.yaml");
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.status().message(), Catch::Contains("/nonexistent/recipe.yaml"));
}
