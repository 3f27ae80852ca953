// Registers every pass family compiled into this build.
#include "compress/pipeline/registry.h"

#include "compress/quant/ptq_pass.h"
#include "compress/transforms/fold_batch_norm.h"
#ifdef COMPRESS_HAVE_PRUNE
#include "compress/prune/prune_passes.h"
#endif
#ifdef COMPRESS_HAVE_LOWRANK
#include "compress/lowrank/lowrank_passes.h"
#endif
#ifdef COMPRESS_HAVE_DISTILL
#include "compress/distill/finetune.h"
#endif
#ifdef COMPRESS_HAVE_QAT
#include "compress/quant/qat_pass.h"
#endif

namespace compress::pipeline {
namespace {

struct Family {
  const char* prefix;
  Status (*register_passes)(pass::PassRegistry&);
};

// One line per family; optional ones are guarded by their build option.
const Family kFamilies[] = {
    {"transforms", transforms::register_transform_passes},
    {"quant", quant::register_quant_passes},
#ifdef COMPRESS_HAVE_PRUNE
    {"prune", prune::register_prune_passes},
#endif
#ifdef COMPRESS_HAVE_LOWRANK
    {"lowrank", lowrank::register_lowrank_passes},
#endif
#ifdef COMPRESS_HAVE_DISTILL
    {"distill", distill::register_distill_passes},
#endif
#ifdef COMPRESS_HAVE_QAT
    {"quant.qat", quant::register_qat_passes},
#endif
};

}  // namespace

Expected<pass::PassRegistry> make_pass_registry() {
  pass::PassRegistry registry;
  for (const Family& family : kFamilies) COMPRESS_RETURN_IF_ERROR(family.register_passes(registry));
  return registry;
}

std::vector<std::string> built_families() {
  std::vector<std::string> names;
  for (const Family& family : kFamilies) names.emplace_back(family.prefix);
  return names;
}

}  // namespace compress::pipeline
