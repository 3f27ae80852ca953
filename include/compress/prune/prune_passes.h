// register_prune_passes: the prune family's entry in a PassRegistry.
#pragma once

#include "compress/pass/registry.h"
#include "compress/support/status.h"

namespace compress::prune {

// Registers prune.magnitude and prune.nm (and prune.structured once it exists).
Status register_prune_passes(pass::PassRegistry& registry);

}  // namespace compress::prune
