// PTQ plan options for tests of the int8 plan's shape: weights this CPU's oneDNN int8 kernels sum exactly.
#pragma once

#include "compress/quant/layer_plan.h"
#include "onednn_test_util.h"

namespace compress::test {

// 8-bit weights with VNNI, 7-bit without (Note [int8 and bf16 by CPU ISA] in
// compress/runtime/onednn.h), so the fused int8 plan is what runs everywhere.
inline quant::PlanOptions native_ptq_plan() {
  quant::PlanOptions plan;
  plan.weight_bits = native_int8_weight_bits();
  return plan;
}

}  // namespace compress::test
