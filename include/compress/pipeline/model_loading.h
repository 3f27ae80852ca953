// Loading a model file by its type: .cmf, or TorchScript imported on the fly (when built with LibTorch).
#pragma once

#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/ir/tensor.h"
#include "compress/support/status.h"

namespace compress::pipeline {

struct ModelLoadOptions {
  // Shapes of a TorchScript model's forward() inputs, one per input, as
  // "1,3,224,224" or "1x3x224x224" ("i64:2,16" for token ids). When empty,
  // the importer reads the shapes the file records, and fails asking for
  // them when it records none. Ignored for .cmf files, which state theirs.
  std::vector<std::string> input_shapes;
};

// True for the extensions PyTorch users give TorchScript files (.pt, .pth,
// .ts, .torchscript), in any letter case.
bool is_torchscript_path(const std::string& path);

// A `.cmf` destination: a TorchScript or ONNX name (`q.pt`) for a file that
// will hold .cmf bytes is an error naming `what` and pointing at ctk convert.
Status check_cmf_destination(const std::string& path, const std::string& what);

// Checks each input shape's syntax; the error names the bad one. Without
// LibTorch every shape is accepted here (no TorchScript file can be loaded).
Status check_input_shapes(const std::vector<std::string>& shapes);

// The input shapes that tensors like `inputs` have ("i64:" for integer
// ones): a TorchScript model given sample inputs needs no other shapes.
std::vector<std::string> input_shapes_of(const std::vector<ir::Tensor>& inputs);

// Loads a regular file: TorchScript by extension, everything else as .cmf
// (whose reader rejects other content). Errors name the file.
Expected<ir::Graph> load_model(const std::string& path, const ModelLoadOptions& options = {});

}  // namespace compress::pipeline
