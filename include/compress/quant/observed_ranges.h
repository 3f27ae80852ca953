// The calibrated ranges kept in the model, for later passes and tools to inspect.
#pragma once

#include <map>
#include <string>

#include "compress/ir/graph.h"
#include "compress/quant/observer.h"

namespace compress::quant {

// Note [Observed ranges in the model]
// quant.ptq keeps what calibration observed: for each observed value V of the
// f32 graph (a quantized layer's input, its (activation-fused) output) an
// annotation of kind ir::kObservedRangeKind, f32 [2] = {min, max}, holding
// the observer's range before it was widened to include 0 or capped by a
// fused activation (so the quantization params can be re-derived, and a
// later pass can re-plan without calibrating again). V is the f32 graph's
// name and the annotation is graph-level under key V (Note [Annotations]),
// not attached to the value: after int8 conversion the value itself may be
// gone (a fused ReLU). So the ranges describe the graph quant.ptq
// calibrated; they survive clone(), .cmf save/load and later passes, and
// calling store_observed_ranges again replaces them.
// Stores (or replaces) one annotation per entry of `ranges`; every range must be finite.
Status store_observed_ranges(ir::Graph& graph, const std::map<std::string, Range>& ranges);

// Every observed range stored in `graph`, by value name; malformed entries
// (not f32 [2], non-finite, min > max) are an error naming the value.
Expected<std::map<std::string, Range>> observed_ranges(const ir::Graph& graph);

}  // namespace compress::quant
