// Report rendering: Note [Saying when compression did not pay] (src/eval/report.cpp).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "compress/eval/report.h"

using namespace compress;

namespace {

eval::VariantReport variant(const std::string& name, double b1_ms, double b32_ms) {
  eval::VariantReport v;
  v.name = name;
  v.latency[1].p50_ms = b1_ms;
  v.latency[32].p50_ms = b32_ms;
  return v;
}

}  // namespace

TEST_CASE("a report names the variants that are not clearly faster than the baseline") {
  eval::Report report;
  report.backend = "onednn";
  report.threads = 2;
  report.variants = {variant("fp32", 1.0, 20.0), variant("int8", 0.5, 8.0), variant("sparse80", 0.97, 21.0),
                     variant("pruned", 0.9, 19.5)};
  eval::VariantReport untimed;
  untimed.name = "untimed";
  report.variants.push_back(untimed);

  const std::string md = eval::report_markdown(report, false);
  // sparse80: 1.03x at batch 1 (within noise), 0.95x at 32; pruned: 1.11x, 1.03x.
  CHECK_THAT(md, Catch::Contains("Not clearly faster than fp32 (median speedup below 1.05x at some batch): "
                                 "sparse80 (b1 1.03x, b32 0.95x); pruned (b1 1.11x, b32 1.03x)."));
  CHECK_THAT(md, !Catch::Contains("int8 (b1") && !Catch::Contains("untimed ("));
  CHECK_THAT(eval::report_html(report), Catch::Contains("<p>Not clearly faster than fp32"));

  const nlohmann::json j = nlohmann::json::parse(eval::report_json(report));
  CHECK(j["variants"][0]["clearly_faster"].is_null());  // the baseline
  CHECK(j["variants"][1]["clearly_faster"] == true);
  CHECK(j["variants"][2]["clearly_faster"] == false);
  CHECK(j["variants"][3]["clearly_faster"] == false);
  CHECK(j["variants"][4]["clearly_faster"].is_null());

  report.variants = {variant("fp32", 1.0, 20.0), variant("int8", 0.5, 8.0)};
  CHECK_THAT(eval::report_markdown(report, false), !Catch::Contains("Not clearly faster"));
}
