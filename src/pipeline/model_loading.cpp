// Model loading by file type (see model_loading.h); the one place TorchScript import plugs into the pipeline.
#include "compress/pipeline/model_loading.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "compress/io/cmf.h"
#include "compress/io/files.h"
#ifdef COMPRESS_HAVE_TORCH
#include "compress/torch/import.h"
#endif

namespace compress::pipeline {
namespace {

std::string lowercase_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// Reader messages may or may not name the file already; make sure the final
// line does exactly once.
Status name_file(const Status& status, const std::string& path) {
  if (status.message().find(path) != std::string::npos) return status;
  return status.with_context(path);
}

Expected<ir::Graph> import_torchscript(const std::string& path, const ModelLoadOptions& options) {
#ifdef COMPRESS_HAVE_TORCH
  torch::ImportOptions import_options;
  for (const std::string& text : options.input_shapes) {
    auto spec = torch::parse_input_spec(text);
    if (!spec) return spec.status().with_context("input shape");
    import_options.inputs.push_back(*spec);
  }
  return torch::import_file(path, import_options);
#else
  (void)options;
  return unsupported(
      "{}: this build of compress has no LibTorch, so it cannot import TorchScript; convert the model to .cmf "
      "with a build that has it (install libtorch-dev)",
      path);
#endif
}

}  // namespace

bool is_torchscript_path(const std::string& path) {
  const std::string ext = lowercase_extension(path);
  return ext == ".pt" || ext == ".pth" || ext == ".ts" || ext == ".torchscript";
}

Status check_cmf_destination(const std::string& path, const std::string& what) {
  const std::string ext = lowercase_extension(path);
  if (is_torchscript_path(path) || ext == ".onnx") {
    return invalid_argument("{} '{}' has a {} extension, but this writes .cmf; write a .cmf and export it with "
                            "'ctk convert OUT.cmf {}'",
                            what, path, ext, path);
  }
  return Status::ok();
}

Status check_input_shapes(const std::vector<std::string>& shapes) {
#ifdef COMPRESS_HAVE_TORCH
  for (const std::string& text : shapes) COMPRESS_RETURN_IF_ERROR(torch::parse_input_spec(text).status());
#else
  (void)shapes;
#endif
  return Status::ok();
}

std::vector<std::string> input_shapes_of(const std::vector<ir::Tensor>& inputs) {
  std::vector<std::string> shapes;
  for (const ir::Tensor& t : inputs) {
    std::string text = ir::traits(t.dtype()).is_integer ? "i64:" : "";
    for (size_t d = 0; d < t.shape().size(); ++d) text += (d == 0 ? "" : ",") + std::to_string(t.shape()[d]);
    shapes.push_back(text);
  }
  return shapes;
}

Expected<ir::Graph> load_model(const std::string& path, const ModelLoadOptions& options) {
  // A regular file, whatever the format: LibTorch would block on a FIFO
  // (Note [Inputs and destinations]); a symlink loop or a permission problem
  // is named as such.
  const Status readable = io::check_readable_file(path);
  if (!readable.is_ok()) {
    if (readable.code() == StatusCode::kNotFound) return not_found("{}: no such file", path);
    return readable;
  }
  if (is_torchscript_path(path)) return import_torchscript(path, options);
  Expected<ir::Graph> graph = io::load_cmf(path);
  if (!graph.has_value()) return name_file(graph.status(), path);
  return graph;
}

}  // namespace compress::pipeline
