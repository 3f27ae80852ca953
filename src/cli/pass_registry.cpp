// Registers every pass family compiled into this ctk.
#include "pass_registry.h"

#include "compress/quant/ptq_pass.h"
#include "compress/transforms/fold_batch_norm.h"
#ifdef COMPRESS_HAVE_PRUNE
#include "compress/prune/prune_passes.h"
#endif
#ifdef COMPRESS_HAVE_DISTILL
#include "compress/distill/finetune.h"
#endif

namespace compress::cli {

Expected<pass::PassRegistry> make_pass_registry() {
  pass::PassRegistry registry;
  COMPRESS_RETURN_IF_ERROR(transforms::register_transform_passes(registry));
  COMPRESS_RETURN_IF_ERROR(quant::register_quant_passes(registry));
#ifdef COMPRESS_HAVE_PRUNE
  COMPRESS_RETURN_IF_ERROR(prune::register_prune_passes(registry));
#endif
#ifdef COMPRESS_HAVE_DISTILL
  COMPRESS_RETURN_IF_ERROR(distill::register_distill_passes(registry));
#endif
  return registry;
}

}  // namespace compress::cli
