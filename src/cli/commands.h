// The ctk commands: each cmd_<name>.cpp defines one of these pairs.
#pragma once

#include <string>
#include <vector>

#include "cli.h"

namespace compress::cli {

extern const CommandDoc kInspectDoc;
int run_inspect(const std::vector<std::string>& args);

extern const CommandDoc kInferDoc;
int run_infer(const std::vector<std::string>& args);

extern const CommandDoc kBenchDoc;
int run_bench(const std::vector<std::string>& args);

extern const CommandDoc kEvalDoc;
int run_eval(const std::vector<std::string>& args);

extern const CommandDoc kConvertDoc;
int run_convert(const std::vector<std::string>& args);

extern const CommandDoc kQuantizeDoc;
int run_quantize(const std::vector<std::string>& args);

extern const CommandDoc kPruneDoc;
int run_prune(const std::vector<std::string>& args);

extern const CommandDoc kLowrankDoc;
int run_lowrank(const std::vector<std::string>& args);

extern const CommandDoc kQatDoc;
int run_qat(const std::vector<std::string>& args);

extern const CommandDoc kDistillDoc;
int run_distill(const std::vector<std::string>& args);

extern const CommandDoc kRunDoc;
int run_run(const std::vector<std::string>& args);

extern const CommandDoc kReportDoc;
int run_report(const std::vector<std::string>& args);

}  // namespace compress::cli
