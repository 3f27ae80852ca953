// The prune family's registration.
#include "compress/prune/prune_passes.h"

#include "compress/prune/magnitude_pass.h"
#include "compress/prune/nm_pass.h"
#include "compress/prune/structured.h"

namespace compress::prune {

Status register_prune_passes(pass::PassRegistry& registry) {
  COMPRESS_RETURN_IF_ERROR(registry.add<MagnitudePrunePass>("prune.magnitude"));
  COMPRESS_RETURN_IF_ERROR(registry.add<NMPrunePass>("prune.nm"));
  return register_structured_passes(registry);  // prune.structured
}

}  // namespace compress::prune
