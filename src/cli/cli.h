// Shared pieces of the ctk commands: command table entries, option parsing, exit codes.
#pragma once

#include <boost/program_options.hpp>
#include <nlohmann/json_fwd.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "compress/eval/dataset.h"
#include "compress/eval/report.h"
#include "compress/pipeline/model_loading.h"
#include "compress/support/status.h"

namespace compress::cli {

namespace po = boost::program_options;

// Note [ctk exit codes]
// 0: success. 1: the command ran and failed (unreadable model, bad input
// data): the Status message is printed. 2: the command line itself is wrong
// (unknown command or option, missing or bad argument): a one-line reason and
// a pointer to --help. Scripts and tests rely on the distinction.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Thrown while parsing a command line; main() turns it into exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What `ctk --help` and `ctk CMD --help` say about a command.
struct CommandDoc {
  std::string_view name;         // "inspect"
  std::string_view summary;      // one line, for `ctk --help`
  std::string_view usage;        // "ctk inspect MODEL [--ir] [--json]"
  std::string_view description;  // a paragraph or two
  std::string_view examples;     // one example per line
};

// One entry of the dispatch table in main.cpp. Each command lives in its own
// cmd_<name>.cpp and exposes a `CommandDoc` and a `run` function.
struct Command {
  const CommandDoc* doc;
  int (*run)(const std::vector<std::string>& args);
};

// Options every command accepts, before or after the command name.
po::options_description global_options();
// Applies --log-level/--threads/--quiet from a parsed command line.
// Throws UsageError on a bad value.
void apply_global_options(const po::variables_map& vm);

// A command's parser: its own options plus the global ones and --help.
class CommandLine {
 public:
  explicit CommandLine(const CommandDoc& doc);

  po::options_description& options() { return options_; }
  // A positional argument (a string; a list of strings when max_count is
  // -1, "the rest"), in order of the calls. Not listed under the options.
  void add_positional(const char* name, int max_count = 1);

  // Parses and applies the global options. Returns false when --help was
  // requested (the help has been printed; the command returns 0).
  bool parse(const std::vector<std::string>& args);
  const po::variables_map& vm() const { return vm_; }
  bool has(const char* name) const { return vm_.count(name) != 0; }
  // How to load this command's MODEL arguments (--input-shape).
  pipeline::ModelLoadOptions model_options() const;

  [[noreturn]] void usage_error(const std::string& reason) const { throw UsageError(reason); }
  // The value of a required positional, or a "missing NAME" usage error.
  std::string required_positional(const char* name, const char* display_name) const;

  std::string help_text() const;
  const CommandDoc& doc() const { return doc_; }

 private:
  const CommandDoc& doc_;
  po::options_description options_;
  po::options_description hidden_;
  po::positional_options_description positional_;
  po::variables_map vm_;
};

// Prints "ctk CMD: <status>" to stderr and returns kExitFailure.
int report_failure(const CommandDoc& doc, const Status& status);

// A pass's option error in the words of the command line that set the
// options: "option 'target_params'" becomes "--target-params" for every
// (recipe key, flag) pair the command forwarded to the pass.
std::string in_flag_terms(std::string message, const std::vector<std::pair<std::string, std::string>>& key_flags);

// A YAML flow list of quoted strings: ["a", "b\"c"] (repeatable flags as one pass option).
std::string flow_list(const std::vector<std::string>& items);

// Repeated "PATTERN=VALUE" flags as a YAML flow mapping {"PATTERN": VALUE, ...}
// (patterns quoted and escaped); a malformed one is a usage error naming
// `flag` with an example such as "'conv1=8'".
std::string pattern_map(const CommandLine& cl, const std::string& flag, const std::vector<std::string>& specs,
                        const std::string& value_name, const std::string& example);

// --mean and --std (and --limit when `with_limit`) for a command that reads
// a dataset; dataset_options() reads them back checked: a finite mean, a
// finite std > 0, a limit >= 1 (a usage error naming the flag otherwise).
void add_dataset_options(CommandLine& cl, bool with_limit);
eval::DatasetOptions dataset_options(const CommandLine& cl);

// A double flag that must be finite and within [lo, hi]; a usage error
// naming the flag otherwise (`nan` and `inf` parse as doubles).
double checked_number(const CommandLine& cl, const char* flag, double lo, double hi);

// Checks an output file before any work (Note [Inputs and destinations]):
// the same file as one of `inputs` is a usage error (exit 2); a destination
// that cannot be written (missing folder, a directory or device in the way)
// returns the error for report_failure (exit 1).
Status check_destination(const CommandLine& cl, const std::string& path, const std::vector<std::string>& inputs,
                         const std::string& what);

// Refuses a TorchScript or ONNX name for a file a command writes as .cmf
// (`ctk quantize m.cmf q.pt` would write .cmf bytes under a .pt name):
// a usage error pointing at ctk convert.
void require_cmf_destination(const CommandLine& cl, const std::string& path, const std::string& what);

// JSON text of `j` for stdout; strings that are not UTF-8 (file and node
// names may hold any byte) get U+FFFD instead of an exception.
std::string json_text(const nlohmann::json& j, int indent);

// The report's summary table (Markdown, without the per-layer tables, which
// are in the files) and where the files went, on stdout.
void print_report_summary(const eval::Report& report, const std::string& out_dir);

// "a,b,,c" -> {"a", "b", "c"} (empty items dropped, spaces trimmed).
std::vector<std::string> split_list(const std::string& text);

}  // namespace compress::cli
