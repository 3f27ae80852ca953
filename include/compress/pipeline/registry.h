// The registry of every pass family built into this compress (what ctk run and a C++ pipeline name in recipes).
#pragma once

#include <string>
#include <vector>

#include "compress/pass/registry.h"

namespace compress::pipeline {

// transforms.*, quant.*, and when built: prune.* and (with LibTorch)
// distill.*. A family added to the build registers itself here.
Expected<pass::PassRegistry> make_pass_registry();

// The pass families compiled in, by prefix ("transforms", "quant", ...).
std::vector<std::string> built_families();

}  // namespace compress::pipeline
