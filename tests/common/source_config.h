// The config the config-source tests publish (file, HTTP, Redis key): one token-bucket policy
// for tenant:*, told apart by its burst.
#pragma once

#include <string>

namespace tollgate::testing {

inline std::string bucket_config_json(int burst) {
  return R"({"policies": [{"match": "tenant:*", "type": "token_bucket", "rate": 1, "burst": )" +
         std::to_string(burst) + "}]}";
}

}  // namespace tollgate::testing
