// Leveled logging to stderr; the level comes from the API or COMPRESS_LOG_LEVEL.
#pragma once

#include <fmt/format.h>

#include <functional>
#include <string>
#include <string_view>

namespace compress {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

// Parses "debug", "info", "warning", "error", "off" (case-insensitive).
bool parse_log_level(std::string_view text, LogLevel* level);
void set_log_level(LogLevel level);
LogLevel log_level();
// Replace where log lines go (tests capture them); nullptr restores stderr.
using LogSink = std::function<void(LogLevel, const std::string&)>;
void set_log_sink(LogSink sink);
void log_message(LogLevel level, const std::string& message);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level < log_level()) return;
  log_message(level, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void log_debug(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kDebug, f, std::forward<Args>(a)...); }
template <typename... Args>
void log_info(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kInfo, f, std::forward<Args>(a)...); }
template <typename... Args>
void log_warning(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kWarning, f, std::forward<Args>(a)...); }
template <typename... Args>
void log_error(fmt::format_string<Args...> f, Args&&... a) { log(LogLevel::kError, f, std::forward<Args>(a)...); }

}  // namespace compress
