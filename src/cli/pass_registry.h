// The pass registry of this ctk build: every pass family that was compiled in.
#pragma once

#include "compress/pass/registry.h"

namespace compress::cli {

// transforms.*, quant.*, and when built: prune.* and (with LibTorch) distill.*.
Expected<pass::PassRegistry> make_pass_registry();

}  // namespace compress::cli
