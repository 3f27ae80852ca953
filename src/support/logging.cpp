#include "compress/support/logging.h"

#include "compress/support/text.h"

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace compress {
namespace {

LogLevel level_from_environment() {
  LogLevel level = LogLevel::kWarning;
  if (const char* env = std::getenv("COMPRESS_LOG_LEVEL")) parse_log_level(env, &level);
  return level;
}

std::atomic<int>& current_level() {
  static std::atomic<int> level{static_cast<int>(level_from_environment())};
  return level;
}

std::mutex& sink_mutex() {
  static std::mutex m;
  return m;
}
LogSink& sink() {
  static LogSink s;
  return s;
}

const char* level_tag(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "?";
}

}  // namespace

bool parse_log_level(std::string_view text, LogLevel* level) {
  std::string lower;
  for (char c : text) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "debug") *level = LogLevel::kDebug;
  else if (lower == "info") *level = LogLevel::kInfo;
  else if (lower == "warning" || lower == "warn") *level = LogLevel::kWarning;
  else if (lower == "error") *level = LogLevel::kError;
  else if (lower == "off" || lower == "none") *level = LogLevel::kOff;
  else return false;
  return true;
}

void set_log_level(LogLevel level) { current_level().store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(current_level().load()); }

void set_log_sink(LogSink new_sink) {
  std::lock_guard<std::mutex> lock(sink_mutex());
  sink() = std::move(new_sink);
}

void log_message(LogLevel level, const std::string& message) {
  std::lock_guard<std::mutex> lock(sink_mutex());
  if (sink()) {
    sink()(level, message);
    return;
  }
  // Log lines echo file and node names (Note [Printing outside text]).
  std::fprintf(stderr, "[compress %s] %s\n", level_tag(level), printable(message).c_str());
}

}  // namespace compress
