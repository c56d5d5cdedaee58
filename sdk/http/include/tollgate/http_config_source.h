// An HTTP(S) URL as a config source, through cpprestsdk's http_client: polled with
// If-None-Match, so that an unchanged config costs a 304 and no body. In its own library,
// Tollgate::http (libcpprest needs libbrotli and zlib; libtollgate.so needs neither).
#pragma once

#include <memory>
#include <string>

#include "tollgate/config_source.h"

namespace tollgate {

class HttpConfigSource final : public ConfigSource {
 public:
  struct Options {
    Nanos timeout = std::chrono::seconds{2};  // the whole request; longer is a failure
  };
  // http://host:port/path or https://…; a user and password in the URL are sent, never logged.
  explicit HttpConfigSource(std::string url);
  HttpConfigSource(std::string url, Options options);
  ~HttpConfigSource() override;
  // 200: kChanged (its ETag kept for the next If-None-Match); 304: kUnchanged; anything
  // else, a timeout or a connection error: kFailed.
  Fetched fetch() override;
  std::string describe() const override;

 private:
  struct Client;
  std::unique_ptr<Client> client_;
  std::string shown_;  // the URL without user and password
  std::string etag_;
  std::string last_;  // the last body: a server without ETags is compared by content
  bool fetched_ = false;
};

}  // namespace tollgate
