// Config::from_json_file: the file's text, bounded, then Config::from_json.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/json_reader.h"
#include "tollgate/config.h"

namespace tollgate {
namespace {
constexpr std::uintmax_t kMaxConfigFileBytes = 16u << 20;
}  // namespace

Config Config::from_json_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    core::json::fail("config_file",
                     "cannot read " + core::json::in_quotes(path) + ": is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in)
    core::json::fail("config_file",
                     "cannot read " + core::json::in_quotes(path) + ": " + std::strerror(errno));
  std::string text;
  char buf[8192];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigFileBytes) {
      core::json::fail("config_file",
                       "cannot read " + core::json::in_quotes(path) + ": larger than 16 MiB");
    }
  }
  if (in.bad())
    core::json::fail("config_file",
                     "cannot read " + core::json::in_quotes(path) + ": " + std::strerror(errno));
  return from_json(text);
}

}  // namespace tollgate
