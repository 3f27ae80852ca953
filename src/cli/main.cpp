// ctk: the command-line front end of compress. Dispatches `ctk <command> [options]`.
#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cli.h"
#include "commands.h"
#include "compress/support/text.h"

namespace compress::cli {
namespace {

// Adding a command: write cmd_<name>.cpp (a CommandDoc and a run function),
// declare both in commands.h and add one line here.
constexpr std::array<Command, 12> kCommands = {{
    {&kInspectDoc, &run_inspect},
    {&kInferDoc, &run_infer},
    {&kEvalDoc, &run_eval},
    {&kBenchDoc, &run_bench},
    {&kConvertDoc, &run_convert},
    {&kQuantizeDoc, &run_quantize},
    {&kPruneDoc, &run_prune},
    {&kLowrankDoc, &run_lowrank},
    {&kQatDoc, &run_qat},
    {&kDistillDoc, &run_distill},
    {&kRunDoc, &run_run},
    {&kReportDoc, &run_report},
}};

const Command* find_command(const std::string& name) {
  for (const Command& c : kCommands) {
    if (c.doc->name == name) return &c;
  }
  return nullptr;
}

void print_main_help() {
  std::string text =
      "usage: ctk [global options] <command> [options]\n\n"
      "compress toolkit: inspect, convert, run and benchmark neural network models\n"
      "(.cmf files, or TorchScript .pt files imported on the fly).\n\n"
      "Commands:\n";
  size_t width = 0;
  for (const Command& c : kCommands) width = std::max(width, c.doc->name.size());
  for (const Command& c : kCommands) {
    text += fmt::format("  {:<{}}  {}\n", c.doc->name, width, c.doc->summary);
  }
  po::options_description top("Options");
  top.add_options()("help,h", "show this help")("version", "print the version");
  top.add(global_options());
  std::cout << text << "\n" << top << "\nRun 'ctk <command> --help' for a command's options and examples.\n";
}

// Global options may come before the command name; everything from the
// command name on belongs to the command (which accepts globals too).
int dispatch(const std::vector<std::string>& args) {
  const po::options_description globals = global_options();
  size_t i = 0;
  std::vector<std::string> prefix;
  bool help = false, version = false;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.empty() || a[0] != '-') break;
    if (a == "--help" || a == "-h") {
      help = true;
      continue;
    }
    if (a == "--version") {
      version = true;
      continue;
    }
    prefix.push_back(a);
    // "--threads 4": the value is the next token unless given as --threads=4.
    const std::string key = a.substr(a.find_first_not_of('-'), a.find('=') - a.find_first_not_of('-'));
    const po::option_description* d = globals.find_nothrow(key, false);
    if (d != nullptr && d->semantic()->max_tokens() > 0 && a.find('=') == std::string::npos && i + 1 < args.size()) {
      prefix.push_back(args[++i]);
    }
  }
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(prefix).options(globals).run(), vm);
    po::notify(vm);
    apply_global_options(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  if (version) {
    std::cout << "ctk (compress) " << COMPRESS_VERSION << "\n";
    return kExitOk;
  }
  if (help) {
    print_main_help();
    return kExitOk;
  }
  if (i == args.size()) throw UsageError("missing command");
  const Command* command = find_command(args[i]);
  if (command == nullptr) throw UsageError(fmt::format("unknown command '{}'", printable(args[i])));
  // The command parses the global options given before its name again, in
  // front of its own arguments, so that what they set (--input-shape) is
  // part of its command line rather than process state.
  std::vector<std::string> rest = prefix;
  rest.insert(rest.end(), args.begin() + static_cast<long>(i) + 1, args.end());
  try {
    return command->run(rest);
  } catch (const UsageError& e) {
    std::cerr << "ctk " << command->doc->name << ": " << compress::printable(e.what()) << "; see 'ctk "
              << command->doc->name << " --help'\n";
    return kExitUsage;
  }
}

}  // namespace
}  // namespace compress::cli

int main(int argc, char** argv) {
  using namespace compress::cli;
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return dispatch(args);
  } catch (const UsageError& e) {
    std::cerr << "ctk: " << compress::printable(e.what()) << "; see 'ctk --help'\n";
    return kExitUsage;
  } catch (const compress::Error& e) {
    // Library API boundary errors that a command did not turn into a Status.
    std::cerr << "ctk: " << compress::printable(e.what()) << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "ctk: unexpected error: " << compress::printable(e.what()) << "\n";
    return kExitFailure;
  }
}
