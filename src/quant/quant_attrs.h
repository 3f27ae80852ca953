// quantize/fake_quant attributes from QuantParams (shared by the two conversions).
#pragma once

#include <string>
#include <vector>

#include "compress/ir/attributes.h"
#include "compress/ir/dtype.h"
#include "compress/ir/quant_params.h"

namespace compress::quant {

// Scales travel as f64 attributes and come back as f32 exactly (every f32 is
// a double), so both graphs see bit-identical scales.
inline ir::AttributeMap quant_attrs(const ir::QuantParams& p) {
  ir::AttributeMap a;
  a["dtype"] = std::string(ir::dtype_name(p.storage()));
  a["scale"] = std::vector<double>(p.scales().begin(), p.scales().end());
  a["zero_point"] = std::vector<int64_t>(p.zero_points().begin(), p.zero_points().end());
  a["axis"] = p.granularity() == ir::QuantGranularity::kPerTensor ? int64_t{-1} : p.axis();
  a["qmin"] = p.qmin();
  a["qmax"] = p.qmax();
  return a;
}

}  // namespace compress::quant
