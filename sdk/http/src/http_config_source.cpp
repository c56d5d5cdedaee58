#include "tollgate/http_config_source.h"

#include <cpprest/http_client.h>

#include <utility>

namespace tollgate {

namespace {

// "http://user:pass@host/x" -> "http://host/x": what logs may show.
std::string without_credentials(const std::string& url) {
  const auto scheme = url.find("://");
  const auto start = scheme == std::string::npos ? 0 : scheme + 3;
  const auto at = url.find('@', start);
  const auto slash = url.find('/', start);
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) return url;
  return url.substr(0, start) + url.substr(at + 1);
}

}  // namespace

struct HttpConfigSource::Client {
  web::http::client::http_client http;
  Client(const std::string& url, const Options& options)
      : http(utility::conversions::to_string_t(url), [&] {
          web::http::client::http_client_config c;
          c.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(options.timeout));
          return c;
        }()) {}
};

HttpConfigSource::HttpConfigSource(std::string url) : HttpConfigSource(std::move(url), Options{}) {}

HttpConfigSource::HttpConfigSource(std::string url, Options options)
    : client_(std::make_unique<Client>(url, options)), shown_(without_credentials(url)) {}

HttpConfigSource::~HttpConfigSource() = default;

std::string HttpConfigSource::describe() const {
  return shown_;
}

ConfigSource::Fetched HttpConfigSource::fetch() {
  Fetched f;
  try {
    web::http::http_request request(web::http::methods::GET);
    if (!etag_.empty()) request.headers().add(web::http::header_names::if_none_match, etag_);
    web::http::http_response response = client_->http.request(request).get();
    const auto status = response.status_code();
    if (status == web::http::status_codes::NotModified) {
      f.outcome = Outcome::kUnchanged;
      return f;
    }
    if (status != web::http::status_codes::OK) {
      f.error = "HTTP " + std::to_string(status);
      return f;
    }
    std::string body = response.extract_utf8string(true).get();
    etag_.clear();
    if (auto it = response.headers().find(web::http::header_names::etag);
        it != response.headers().end())
      etag_ = utility::conversions::to_utf8string(it->second);
    if (fetched_ && body == last_) {
      f.outcome = Outcome::kUnchanged;
      return f;
    }
    fetched_ = true;
    last_ = body;
    f.text = std::move(body);
    f.outcome = Outcome::kChanged;
  } catch (const std::exception& e) {
    f.outcome = Outcome::kFailed;
    f.error = e.what();
  }
  return f;
}

}  // namespace tollgate
