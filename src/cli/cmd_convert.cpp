// `ctk convert IN OUT`: TorchScript -> .cmf (import), .cmf -> TorchScript (export), .cmf -> .cmf.
#include <fmt/format.h>

#include <iostream>

#include "commands.h"
#include "compress/io/cmf.h"
#include "compress/ir/printer.h"
#include "compress/pipeline/model_loading.h"
#ifdef COMPRESS_HAVE_TORCH
#include "compress/torch/export.h"
#endif

namespace compress::cli {

const CommandDoc kConvertDoc = {
    "convert",
    "convert between TorchScript (.pt) and .cmf",
    "ctk convert MODEL OUT [--input-shape SHAPE]...",
    "Reads MODEL (.cmf, or a TorchScript .pt/.pth/.ts file) and writes it as OUT.\n"
    "The format of OUT follows its extension: .pt/.pth/.ts writes TorchScript\n"
    "that torch.jit.load() runs (sparse weights written dense; real integer\n"
    "graphs are refused, export their fake-quant form), anything else writes\n"
    ".cmf. Importing TorchScript needs the input shapes: from --input-shape,\n"
    "once per input, or from the file's compress_inputs.json extra file.\n"
    "TorchScript files are programs: convert only files you trust. OUT is\n"
    "written atomically; on failure no partial file is left.",
    "  ctk convert resnet18.pt resnet18.cmf --input-shape 1,3,224,224\n"
    "  ctk convert gpt.pt gpt.cmf --input-shape i64:1,64\n"
    "  ctk convert pruned.cmf pruned.pt\n",
};

int run_convert(const std::vector<std::string>& args) {
  CommandLine cl(kConvertDoc);
  cl.add_positional("model");
  cl.add_positional("out");
  if (!cl.parse(args)) return kExitOk;
  const std::string in = cl.required_positional("model", "MODEL");
  const std::string out = cl.required_positional("out", "OUT");
  if (in == out) cl.usage_error("MODEL and OUT are the same file");
  const Status destination = check_destination(cl, out, {in}, "OUT");
  if (!destination.is_ok()) return report_failure(kConvertDoc, destination);

  Expected<ir::Graph> graph = pipeline::load_model(in, cl.model_options());
  if (!graph.has_value()) return report_failure(kConvertDoc, graph.status());

  Status written;
  if (pipeline::is_torchscript_path(out)) {
#ifdef COMPRESS_HAVE_TORCH
    written = torch::export_torchscript(*graph, out);
#else
    written = unsupported("{}: this ctk was built without LibTorch and cannot write TorchScript", out);
#endif
  } else {
    written = io::save_cmf(*graph, out);
  }
  if (!written.is_ok()) return report_failure(kConvertDoc, written);
  if (!cl.vm()["quiet"].as<bool>()) {
    std::cout << fmt::format("wrote {}: {} nodes, {} constants, input{} ", out, graph->num_nodes(),
                             graph->constants().size(), graph->inputs().size() == 1 ? "" : "s");
    for (size_t i = 0; i < graph->inputs().size(); ++i) {
      std::cout << (i ? ", " : "") << graph->inputs()[i]->name() << " " << graph->inputs()[i]->type().to_string();
    }
    std::cout << "\n";
  }
  return kExitOk;
}

}  // namespace compress::cli
