// TorchScript -> IR import (traced or scripted models in eval mode).
#pragma once

#include <string>
#include <vector>

#include "compress/ir/graph.h"
#include "compress/support/status.h"

namespace torch::jit {
struct Module;
}  // namespace torch::jit
namespace torch::nn {
class Sequential;
}  // namespace torch::nn

namespace compress::torch {

// Note [TorchScript is code]
// A TorchScript file is a program: loading it runs code with the trust of its
// author. Import models you trust; exchange compressed models as .cmf files,
// which hold only data and are validated on load.

struct InputSpec {
  std::string name;  // empty: taken from the TorchScript forward() argument
  ir::Shape shape;
  ir::DType dtype = ir::DType::kF32;
};

struct ImportOptions {
  // Shapes of forward()'s inputs. When empty, the importer reads them from
  // the file's extra file "compress_inputs.json" (written by
  // tests/fixtures and docs/torch.md's helper), and fails with a message
  // asking for --input-shape when neither is there.
  std::vector<InputSpec> inputs;
};

// Name of the TorchScript extra file that records input shapes.
inline constexpr const char* kInputsExtraFile = "compress_inputs.json";

// Parses "1,3,224,224" or "1x3x224x224" (optionally prefixed "i64:" for the dtype).
Expected<InputSpec> parse_input_spec(const std::string& text);

// Loads a TorchScript file and imports it. Every failure (not a zip, a
// truncated archive, an op we cannot map) is a Status naming the file, and
// for ops the op, its source location and module path.
Expected<ir::Graph> import_file(const std::string& path, const ImportOptions& options = {});
// Imports a module already in memory (a LibTorch training program's model).
Expected<ir::Graph> import_module(const ::torch::jit::Module& module, const ImportOptions& options);

// Imports a LibTorch C++-frontend torch::nn::Sequential (the way C++ training
// programs build models) without a TorchScript round trip. Supported
// children: Conv2d, BatchNorm2d, Linear, ReLU, ReLU6, SiLU, GELU, Sigmoid,
// Tanh, Hardtanh, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, and
// Dropout/Identity (dropped). Parameters are named "<child name>.weight".
// Any other child is an error naming it.
Expected<ir::Graph> import_sequential(const ::torch::nn::Sequential& model, const InputSpec& input);

}  // namespace compress::torch
