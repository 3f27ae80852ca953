// Which conv2d/linear nodes PTQ quantizes, and the exact params each boundary gets.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/ir/quant_params.h"
#include "compress/quant/calibration.h"
#include "compress/quant/scheme.h"

namespace compress::quant {

// One quantized layer. Names, not pointers, so one plan converts any clone
// of the graph it was made for (the int8 and the fake-quant variant).
struct LayerQuant {
  std::string node;            // the conv2d/linear
  std::string relu;            // a relu/relu6/clamp(0, M) fused into the output range ("" if none)
  std::string input;           // the f32 value the layer reads
  std::string output;          // the value the layer's result replaces (the activation's output when fused)
  ir::QuantParams input_params;
  ir::QuantParams weight_params;
  std::optional<ir::QuantParams> output_params;  // u8 requantized output; nullopt: f32 output
};

// conv2d/linear nodes with a constant f32 weight (and constant bias, if any).
std::vector<std::string> quantizable_nodes(const ir::Graph& graph);

// The values calibration must observe for `nodes`: each input and each
// (activation-fused) output.
std::vector<std::string> values_to_observe(const ir::Graph& graph, const std::vector<std::string>& nodes);

// Note [PTQ boundaries]
// - A ReLU that is the only user of a layer's output is fused: the output is
//   requantized with zero point 0 over [0, max] (the observed ReLU output
//   widened to include 0), so clamping at qmin = 0 is the ReLU. relu6 and
//   clamp(min = 0, max = M) are fused the same way, with the range max
//   capped at M (6) and params for which quantize(M) == qmax, so clamping
//   at qmax is the clamp at M (Note [Fusing ReLU6 and clamp(0, M)],
//   layer_plan.cpp).
// - A layer output that is a graph output, or that no quantized layer and no
//   add reads (only f32 ops do: Note [f32 outputs for f32 readers],
//   layer_plan.cpp), stays f32 (out_dtype f32), and an activation after it is
//   not fused; every other output is requantized to u8 over its observed range.
// - A layer input reached from another layer's u8 output through ops that
//   only move or select values (max_pool2d, flatten, reshape) reuses that
//   output's params: requantizing such values is then lossless. Any other
//   input gets params from its own observed range.
// Choices of the scheme that plan_layers leaves open.
struct PlanOptions {
  WeightGranularity weight_granularity = WeightGranularity::kPerChannel;  // weight_params
  int64_t weight_bits = 8;  // 7: codes in [-63, 63], which CPUs without VNNI sum exactly (onednn.h)
};

Expected<std::vector<LayerQuant>> plan_layers(const ir::Graph& graph, const std::vector<std::string>& nodes,
                                              const CalibrationResult& calibration, const PlanOptions& options = {});

struct Int8Options {
  // Note [Requantize after max pooling] (int8_conversion.cpp): the layer
  // writes f32 into a max pool that only feeds layers, and the pooled values
  // are quantized. Off (the default), the layer writes u8 and the pool runs
  // on u8 (Note [Max pooling on u8]), which moves a quarter of the bytes.
  // Both compute the same values (tested).
  bool pool_before_requantize = false;
  // Note [Quantized residual adds] (int8_conversion.cpp): an f32 add of two
  // dequantized values whose result is only requantized (and read by other
  // such adds) becomes a qadd; off keeps it f32 between dequantize and quantize.
  bool quantized_adds = true;
};

// Rewrites `graph` into the deployable int8 graph: quantize (u8) at the
// boundaries, qconv2d/qlinear with i8 per-channel (or per-tensor) weights and the f32 bias,
// dequantize before ops that are not quantized.
Status convert_to_int8(ir::Graph& graph, const std::vector<LayerQuant>& layers, const Int8Options& options = {});

// Rewrites `graph` into the f32 simulation of the same int8 graph: a
// fake_quant with the same params at every place the int8 graph quantizes
// (inputs, weights, requantized outputs). Runs on any backend.
Status convert_to_fake_quant(ir::Graph& graph, const std::vector<LayerQuant>& layers);

}  // namespace compress::quant
