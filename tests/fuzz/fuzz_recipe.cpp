// libFuzzer target for YAML recipes: parse, create every stage's pass from the full registry, check stage needs.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include "compress/pass/recipe.h"
#include "compress/pipeline/registry.h"
#include "fuzz_common.h"

using namespace compress;

namespace {

// ctk's own registry (src/cli/pass_registry.cpp is compiled into this
// target), so the fuzzer reaches every option parser ctk run would.
const pass::PassRegistry& registry() {
  static const pass::PassRegistry r = [] {
    Expected<pass::PassRegistry> made = pipeline::make_pass_registry();
    if (!made) {
      std::fprintf(stderr, "make_pass_registry: %s\n", made.status().message().c_str());
      std::abort();
    }
    return std::move(*made);
  }();
  return r;
}

void run(const std::string& text) {
  Expected<pass::Recipe> recipe = pass::parse_recipe(text, "fuzz.yaml");
  if (!recipe) return fuzz::check_not_internal(recipe.status(), "parse_recipe");
  if (recipe->stages.empty()) __builtin_trap();  // the parser promises at least one stage
  Expected<std::vector<std::unique_ptr<pass::Pass>>> passes = pass::create_passes(*recipe, registry());
  if (!passes) return fuzz::check_not_internal(passes.status(), "create_passes");
  if (passes->size() != recipe->stages.size()) __builtin_trap();
  for (const auto& p : *passes) {
    if (p == nullptr) __builtin_trap();
    (void)p->name();
  }
  fuzz::check_not_internal(pass::check_stage_needs(*recipe, *passes), "check_stage_needs");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // The recipe API returns errors; an exception escaping it (yaml-cpp's
  // conversions throw) would take ctk down, so it is a finding.
  try {
    run(text);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exception escaped the recipe API: %s\n", e.what());
    __builtin_trap();
  } catch (...) {
    std::fprintf(stderr, "non-standard exception escaped the recipe API\n");
    __builtin_trap();
  }
  return 0;
}
