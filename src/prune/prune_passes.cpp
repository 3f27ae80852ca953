// The prune family's registration.
#include "compress/prune/prune_passes.h"

#include "compress/prune/magnitude_pass.h"
#include "compress/prune/nm_pass.h"

namespace compress::prune {

Status register_prune_passes(pass::PassRegistry& registry) {
  COMPRESS_RETURN_IF_ERROR(registry.add<MagnitudePrunePass>("prune.magnitude"));
  COMPRESS_RETURN_IF_ERROR(registry.add<NMPrunePass>("prune.nm"));
  // prune.structured (structured_pass.h) registers here.
  return Status::ok();
}

}  // namespace compress::prune
