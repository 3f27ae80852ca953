// IR -> TorchScript export, so a compressed model can go back to a Python workflow.
#pragma once

#include <string>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::torch {

// Writes a TorchScript file that torch.jit.load() runs with the same outputs
// as the IR on the reference backend (f32 graphs, fake_quant included;
// sparse weights are written dense). The file is written atomically. Graphs
// with real integer ops (quantize/qconv2d/...) are rejected: export their
// fake-quant form instead.
Status export_torchscript(const ir::Graph& graph, const std::string& path);

// The TorchScript source of forward() that export_torchscript() defines
// (for docs, debugging and tests).
Expected<std::string> torchscript_source(const ir::Graph& graph);

}  // namespace compress::torch
