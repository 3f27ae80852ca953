// The activation probe (see activation_probe.h): one probe graph, one plan, one batch in memory at a time.
#include "compress/eval/activation_probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>

#include "compress/runtime/backend.h"
#include "compress/support/progress.h"

namespace compress::eval {
namespace {

// A model converted with its reshapes fixed to one batch (TorchScript's
// attention bakes them in) fails on any other batch with a reshape error
// deep inside the graph; say which batch this was and, for a reshape error,
// what would work.
Status with_batch_hint(const Status& error, const ir::Graph& graph, const std::string& title, int64_t start,
                       int64_t count) {
  std::string hint = fmt::format(" ({}: batch of {} samples from sample {}", title, count, start);
  const std::vector<int64_t>& declared = graph.inputs()[0]->shape();
  if (error.message().find("reshape") != std::string::npos && !declared.empty() && declared[0] != count) {
    hint += fmt::format("; the model's input is declared with batch {}: a model whose reshapes were fixed at "
                        "conversion runs with batch {} and a sample count that is a multiple of it",
                        declared[0], declared[0]);
  }
  return Status(error.code(), error.message() + hint + ")");
}

}  // namespace

Status probe_values(const ir::Graph& graph, const std::vector<std::string>& values, const DataSource& data,
                    const ProbeOptions& options, const ProbeVisitor& visit) {
  const std::string& title = options.title;
  if (options.samples < 1 || options.batch < 1) {
    return invalid_argument("{}: needs samples >= 1 and batch >= 1 (got {} and {})", title, options.samples,
                            options.batch);
  }
  if (graph.inputs().size() != 1) {
    return unsupported("{}: the probe feeds one input; the graph has {}", title, graph.inputs().size());
  }
  const int64_t total = std::min(options.samples, data.size());
  if (total < 1) return invalid_argument("{}: the data {} is empty", title, data.describe());

  // The probe graph outputs exactly the requested node values, each once;
  // -1 marks the graph input (the batch itself).
  ir::Graph probe = graph.clone();
  probe.set_outputs({});
  std::vector<int64_t> source;
  std::map<std::string, int64_t> output_of;
  for (const std::string& name : values) {
    ir::Value* v = probe.find_value(name);
    if (v == nullptr) return not_found("{}: no value named '{}'", title, name);
    if (v->is_input()) {
      source.push_back(-1);
      continue;
    }
    auto it = output_of.find(name);
    if (it == output_of.end()) {
      probe.add_output(v);
      it = output_of.emplace(name, static_cast<int64_t>(probe.outputs().size()) - 1).first;
    }
    source.push_back(it->second);
  }
  std::unique_ptr<runtime::ExecutionPlan> plan;
  if (!probe.outputs().empty()) {
    probe.remove_dead_nodes();
    COMPRESS_ASSIGN_OR_RETURN(auto backend, runtime::make_backend(options.backend));
    COMPRESS_ASSIGN_OR_RETURN(plan, backend->compile(probe));
  }

  ProgressReporter progress(title, total, options.progress ? ProgressReporter::Mode::kAuto : ProgressReporter::Mode::kOff);
  ProbeBatch seen;
  seen.values.resize(values.size());
  for (int64_t start = 0; start < total; start += options.batch) {
    const int64_t count = std::min(options.batch, total - start);
    COMPRESS_ASSIGN_OR_RETURN(Batch batch, data.batch(start, count));
    std::vector<ir::Tensor> outputs;
    if (plan != nullptr) {
      Expected<std::vector<ir::Tensor>> ran = plan->run({batch.inputs});
      if (!ran.has_value()) return with_batch_hint(ran.status(), graph, title, start, count);
      outputs = std::move(*ran);
    }
    seen.start = start;
    seen.count = count;
    for (size_t i = 0; i < values.size(); ++i) {
      seen.values[i] = source[i] < 0 ? &batch.inputs : &outputs.at(static_cast<size_t>(source[i]));
    }
    COMPRESS_RETURN_IF_ERROR(visit(seen));
    progress.advance(count);
  }
  progress.finish();
  return Status::ok();
}

}  // namespace compress::eval
