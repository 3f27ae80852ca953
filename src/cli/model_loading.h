// Loading a MODEL argument: .cmf files now, TorchScript once src/torch exists.
#pragma once

#include <string>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace compress::cli {

// True for the extensions PyTorch users give TorchScript files (.pt, .pth, .ts).
bool is_torchscript_path(const std::string& path);

// Loads a model by file type: TorchScript files go to import_torchscript(),
// everything else is read as .cmf (whose reader rejects non-.cmf content).
// Errors name the file.
Expected<ir::Graph> load_model(const std::string& path);

// The one place where TorchScript import plugs into the CLI.
Expected<ir::Graph> import_torchscript(const std::string& path);

}  // namespace compress::cli
