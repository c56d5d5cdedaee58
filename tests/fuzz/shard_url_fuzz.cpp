// Shard URLs: any bytes parse or throw std::invalid_argument, never echoing the password;
// what parses has a host and a port, and its redacted form does not depend on the password.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "store/redis/shard_url.h"

using tollgate::core::ShardUrl;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // The same URL with its password (between "user:" and the last or the first '@')
  // replaced by a marker: neither a parse error nor the redacted form may show it.
  constexpr std::string_view kMarker = "Zq7pW9Zq7pW9";
  const auto scheme = text.find("//");
  if (scheme != std::string_view::npos && text.find(kMarker) == std::string_view::npos) {
    for (auto at : {text.rfind('@'), text.find('@', scheme + 2)}) {
      if (at == std::string_view::npos || at < scheme + 2) continue;
      const auto colon = text.find(':', scheme + 2);
      if (colon == std::string_view::npos || colon > at) continue;
      std::string marked(text.substr(0, colon + 1));
      marked += kMarker;
      marked += text.substr(at);
      try {
        const ShardUrl m = ShardUrl::parse(marked);
        if (m.redacted().find(kMarker) != std::string::npos) {
          std::fprintf(stderr, "the password is in the redacted form: %s\n", m.redacted().c_str());
          std::abort();
        }
      } catch (const std::invalid_argument& e) {
        if (std::string_view(e.what()).find(kMarker) != std::string_view::npos) {
          std::fprintf(stderr, "the password is in the message: %s\n", e.what());
          std::abort();
        }
      }
    }
  }
  ShardUrl url;
  try {
    url = ShardUrl::parse(text);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  if (url.host.empty() || url.port == 0 || url.db < 0) std::abort();
  // The redacted form does not depend on the password at all (only on whether there is one).
  if (!url.password.empty()) {
    ShardUrl other = url;
    other.password = "x";
    if (other.redacted() != url.redacted()) {
      std::fprintf(stderr, "the redacted form depends on the password: %s\n",
                   url.redacted().c_str());
      std::abort();
    }
  }
  return 0;
}
