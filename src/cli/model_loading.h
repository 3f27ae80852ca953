// Loading a MODEL argument: a .cmf file, or a TorchScript file imported on the fly.
#pragma once

#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::cli {

// True for the extensions PyTorch users give TorchScript files (.pt, .pth, .ts).
bool is_torchscript_path(const std::string& path);

// Loads a model by file type: TorchScript files go to import_torchscript(),
// everything else is read as .cmf (whose reader rejects non-.cmf content).
// Errors name the file.
Expected<ir::Graph> load_model(const std::string& path);

// The one place where TorchScript import plugs into the CLI. Input shapes
// come from --input-shape (set_torchscript_input_shapes) or from the file.
Expected<ir::Graph> import_torchscript(const std::string& path);
// The --input-shape values of this ctk invocation (validated on use).
// Checks each shape's syntax first (an error names the bad dimension).
Status set_torchscript_input_shapes(std::vector<std::string> shapes);
const std::vector<std::string>& torchscript_input_shapes();

}  // namespace compress::cli
