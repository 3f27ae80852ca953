// IR -> TorchScript: emit TorchScript source for forward(), register the
// constants as parameters/buffers, compile with Module::define, save.
#include "compress/torch/export.h"

#include <torch/script.h>

#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "compress/io/atomic_file.h"
#include "compress/ir/verifier.h"
#include "compress/support/check.h"
#include "compress/torch/import.h"
#include "compress/torch/tensor_convert.h"
#include "op_lowering.h"

namespace compress::torch {
namespace {

class SourceWriter {
 public:
  explicit SourceWriter(const ir::Graph& graph) : graph_(graph) {}

  Expected<std::string> write() {
    for (const ir::Value* c : graph_.constants()) {
      std::string name = sanitize(c->name());
      while (used_.count(name)) name += "_";
      used_.insert(name);
      script_.name(c, "self." + name);
      attribute_names_.emplace_back(c, name);
    }
    std::string args;
    for (size_t i = 0; i < graph_.inputs().size(); ++i) {
      script_.name(graph_.inputs()[i], fmt::format("x{}", i));
      args += fmt::format(", x{}: Tensor", i);
    }
    script_.source() = fmt::format("def forward(self{}):\n", args);
    for (const ir::Node* node : graph_.nodes()) {
      for (size_t i = 0; i < node->num_outputs(); ++i) script_.name(node->output(i), script_.temp("v"));
      COMPRESS_RETURN_IF_ERROR(emit_torchscript(script_, *node));
    }
    std::vector<std::string> results;
    for (const ir::Value* out : graph_.outputs()) results.push_back(script_.name_of(out));
    script_.source() += results.size() == 1 ? fmt::format("    return {}\n", results[0])
                                            : fmt::format("    return ({})\n", fmt::join(results, ", "));
    return script_.source();
  }

  const std::vector<std::pair<const ir::Value*, std::string>>& attributes() const { return attribute_names_; }

 private:
  static std::string sanitize(const std::string& name) {
    std::string s = "c_";
    for (char ch : name) s.push_back(std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_');
    return s;
  }

  const ir::Graph& graph_;
  ScriptBuilder script_;
  std::vector<std::pair<const ir::Value*, std::string>> attribute_names_;
  std::unordered_set<std::string> used_;
};

}  // namespace

Expected<std::string> torchscript_source(const ir::Graph& graph) {
  COMPRESS_RETURN_IF_ERROR(ir::verify(graph).with_context("export"));
  SourceWriter writer(graph);
  return writer.write();
}

Status export_torchscript(const ir::Graph& graph, const std::string& path) {
  COMPRESS_RETURN_IF_ERROR(ir::verify(graph).with_context("export"));
  SourceWriter writer(graph);
  COMPRESS_ASSIGN_OR_RETURN(std::string source, writer.write());
  try {
    ::torch::jit::Module module(c10::QualifiedName("__torch__.compress.ExportedModel"));
    for (const auto& [value, name] : writer.attributes()) {
      COMPRESS_ASSIGN_OR_RETURN(at::Tensor tensor, to_aten(value->constant()));
      const bool parameter = value->dtype() == ir::DType::kF32 && value->shape().size() > 0;
      module.register_parameter(name, tensor, /*is_buffer=*/!parameter);
    }
    module.define(source);
    module.eval();
    // Record the input shapes so that re-importing needs no --input-shape.
    std::string inputs = "{\"inputs\": [";
    for (size_t i = 0; i < graph.inputs().size(); ++i) {
      const ir::Value* in = graph.inputs()[i];
      inputs += fmt::format("{}{{\"name\": \"{}\", \"shape\": [{}], \"dtype\": \"{}\"}}", i ? ", " : "", in->name(),
                            fmt::join(in->shape(), ", "), ir::dtype_name(in->dtype()));
    }
    inputs += "]}";
    std::ostringstream stream;
    module.save(stream, {{kInputsExtraFile, inputs}});
    return io::write_file_atomically(path, stream.str());
  } catch (const c10::Error& e) {
    return make_error(StatusCode::kInternal, "export to {}: TorchScript rejected the generated model: {}", path,
                      e.what_without_backtrace());
  } catch (const std::exception& e) {
    return make_error(StatusCode::kInternal, "export to {}: {}", path, e.what());
  }
}

}  // namespace compress::torch
