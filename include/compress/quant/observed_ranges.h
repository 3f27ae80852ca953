// The calibrated ranges kept in the model, for later passes and tools to inspect.
#pragma once

#include <map>
#include <string>

#include "compress/ir/graph.h"
#include "compress/quant/observer.h"

namespace compress::quant {

// Note [Observed ranges in the model]
// quant.ptq keeps what calibration observed: for each observed value V of the
// f32 graph (a quantized layer's input, its (activation-fused) output) a
// constant f32 tensor [2] = {min, max} named "observed_range/V", holding the
// observer's range before it was widened to include 0 or capped by a fused
// activation (so the quantization params can be re-derived, and a later
// pass can re-plan without calibrating again). V is the f32 graph's name:
// after int8 conversion the value itself may be gone (a fused ReLU).
// Constants, not node attributes: the op table rejects attributes an op
// does not declare (also when a .cmf is read back), and graph inputs have no
// node; constants travel through .cmf files, clone() and every backend
// (which ignore unused ones). Passes that call
// Graph::remove_unused_constants() drop them, so they describe the graph as
// quant.ptq wrote it; calling store_observed_ranges again replaces them.
inline constexpr const char* kObservedRangePrefix = "observed_range/";

// Stores (or replaces) one constant per entry of `ranges`; every range must be finite.
Status store_observed_ranges(ir::Graph& graph, const std::map<std::string, Range>& ranges);

// Every observed range stored in `graph`, by value name; malformed entries
// (not f32 [2], non-finite, min > max) are an error naming the constant.
Expected<std::map<std::string, Range>> observed_ranges(const ir::Graph& graph);

}  // namespace compress::quant
