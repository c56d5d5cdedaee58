// Config::from_json: the strict JSON reader (config/json_reader.h), then one schema per struct
// (config/config_schema.h) from JSON values to Config fields, checking shape (types, unknown
// fields, fields a policy type must or must not have); then validate() checks values
// (config/config_validate.cpp), so a Config built in code obeys the same rules.
#include <algorithm>
#include <array>
#include <string>
#include <string_view>

#include "config/config_rules.h"
#include "config/config_schema.h"
#include "config/store_sections.h"
#include "tollgate/config.h"

namespace tollgate {
namespace {

using namespace core::json;

constexpr std::size_t kMaxPolicies = 65535;  // policies are indexed by 16 bits

PolicyKind parse_kind(const Fields& f) {
  if (!f.has("type")) fail(f.path("type"), "required");
  std::string type;
  f.read("type", type);
  for (auto kind : {PolicyKind::kTokenBucket, PolicyKind::kFixedWindow, PolicyKind::kSlidingWindow,
                    PolicyKind::kConcurrency}) {
    if (type == to_string(kind)) return kind;
  }
  fail(f.path("type"), "unknown type " + in_quotes(type) +
                           " (expected token_bucket, fixed_window, sliding_window or concurrency)");
}

// Which numbers each policy type takes; the others must not be set.
void check_numbers_of(const Fields& f, PolicyKind k) {
  struct Need {
    std::string_view field;
    bool required;
    bool allowed;
  };
  const std::string_view kind = to_string(k);
  const bool bucket = k == PolicyKind::kTokenBucket;
  const bool window = core::is_window(k);
  const std::array<Need, 4> needs = {{
      {"rate", bucket, bucket},
      {"burst", false, bucket},
      {"limit", !bucket, !bucket},
      {"window_ms", window, window},
  }};
  for (const Need& n : needs) {
    if (n.required && !f.has(n.field)) fail(f.path(n.field), "required for " + std::string(kind));
    if (!n.allowed && f.has(n.field)) {
      std::string uses = bucket ? "rate and burst" : window ? "limit and window_ms" : "limit";
      fail(f.path(n.field), "not used by " + std::string(kind) + " (it takes " + uses + ")");
    }
  }
}

// A string that, when present, must be one of `names` (the values of an enum).
template <typename T, typename E, std::size_t N>
SchemaField<T> choice(std::string_view name, E T::*m, std::array<E, N> values,
                      std::string_view expected) {
  return custom<T>(name, [=](const Fields& f, T& out) {
    if (!f.has(name)) return;
    std::string text;
    f.read(name, text);
    for (E v : values) {
      if (text == to_string(v)) {
        out.*m = v;
        return;
      }
    }
    fail(f.path(name),
         "unknown mode " + in_quotes(text) + " (expected " + std::string(expected) + ")");
  });
}

const Schema<PenaltyBox>& penalty_box_schema() {
  static const Schema<PenaltyBox> s = {
      member("denials", &PenaltyBox::denials),
      millis("within_ms", &PenaltyBox::within),
      millis("duration_ms", &PenaltyBox::duration),
  };
  return s;
}

const Schema<Fallback>& fallback_schema() {
  static const Schema<Fallback> s = {
      choice("mode", &Fallback::mode,
             std::array{FallbackMode::kLocal, FallbackMode::kDeny, FallbackMode::kAllow},
             "local, deny or allow"),
      member("instances", &Fallback::instances),
      member("rate", &Fallback::rate),
      member("burst", &Fallback::burst),
  };
  return s;
}

const Schema<Policy>& policy_schema() {
  static const Schema<Policy> s = {
      custom<Policy>("match",
                     [](const Fields& f, Policy& p) {
                       if (!f.has("match")) fail(f.path("match"), "required");
                       f.read("match", p.match);
                     }),
      custom<Policy>("type",
                     [](const Fields& f, Policy& p) {
                       p.kind = parse_kind(f);
                       check_numbers_of(f, p.kind);
                     }),
      custom<Policy>("name",
                     [](const Fields& f, Policy& p) {
                       if (!f.has("name")) {
                         p.name = p.match;
                         return;
                       }
                       f.read("name", p.name);
                       if (p.name.empty())
                         fail(f.path("name"), "must not be empty (omit it to use match)");
                     }),
      custom<Policy>("group",
                     [](const Fields& f, Policy& p) {
                       if (!f.has("group")) return;
                       f.read("group", p.group);
                       if (p.group.empty())
                         fail(f.path("group"),
                              "must not be empty (omit it: each key its own group)");
                     }),
      member("rate", &Policy::rate),
      member("burst", &Policy::burst),
      member("limit", &Policy::limit),
      millis("window_ms", &Policy::window),
      object("penalty_box", &Policy::penalty_box, &penalty_box_schema),
      object("fallback", &Policy::fallback, &fallback_schema),
      member("weight", &Policy::weight),
      member("guaranteed_rate", &Policy::guaranteed_rate),
      member("shadow", &Policy::shadow),
      custom<Policy>("max_overage",
                     [](const Fields& f, Policy& p) {
                       if (!f.has("max_overage")) return;
                       std::uint64_t v = 0;
                       f.read("max_overage", v);
                       p.max_overage = v;
                     }),
      custom<Policy>("fair_instances",
                     [](const Fields& f, Policy& p) {
                       if (!f.has("fair_instances")) return;
                       if (!f.at("fair_instances").is_boolean())
                         fail(f.path("fair_instances"), "expected true or false");
                       p.fair_instances = f.at("fair_instances").get<bool>();
                     }),
  };
  return s;
}

const Schema<Group>& group_schema() {
  static const Schema<Group> s = {
      custom<Group>("name",
                    [](const Fields& f, Group& g) {
                      if (!f.has("name")) fail(f.path("name"), "required");
                      if (!f.has("rate")) fail(f.path("rate"), "required");
                      f.read("name", g.name);
                    }),
      member("rate", &Group::rate),
      member("burst", &Group::burst),
  };
  return s;
}

const Schema<LeaseOptions>& leases_schema() {
  static const Schema<LeaseOptions> s = {
      millis("ttl_ms", &LeaseOptions::ttl),
      millis("horizon_ms", &LeaseOptions::horizon),
      member("max_fraction", &LeaseOptions::max_fraction),
      member("min_tokens", &LeaseOptions::min_tokens),
      millis("expiry_margin_ms", &LeaseOptions::expiry_margin),
      millis("refresh_ms", &LeaseOptions::refresh),
      millis("overdue_floor_ms", &LeaseOptions::overdue_floor),
  };
  return s;
}

const Schema<ColdKeys>& cold_keys_schema() {
  static const Schema<ColdKeys> s = {
      choice("mode", &ColdKeys::mode, std::array{ColdKeyMode::kDeny, ColdKeyMode::kOptimistic},
             "deny or optimistic"),
      member("allowance", &ColdKeys::allowance),
  };
  return s;
}

// A field of another store type's section ("shards" with the in-process store) is named with
// the store types it belongs to, so a missing store.type is not mistaken for a misspelling.
void refuse_fields_of_other_stores(const Fields& f, const std::string& type,
                                   const Schema<StoreConfig>& own) {
  const auto lists = [](const Schema<StoreConfig>& schema, std::string_view name) {
    return std::any_of(schema.begin(), schema.end(),
                       [name](const auto& s) { return s.name == name; });
  };
  for (const core::StoreSection& section : core::store_sections()) {
    for (const SchemaField<StoreConfig>& field : section.fields()) {
      if (!f.has(field.name) || lists(own, field.name)) continue;
      std::string owners;
      for (const core::StoreSection& other : core::store_sections()) {
        if (lists(other.fields(), field.name)) {
          owners += (owners.empty() ? "" : " or ") + in_quotes(other.type);
        }
      }
      fail(f.path(field.name), "unknown field for the store type " + in_quotes(type) +
                                   ": it belongs to the " + owners + " store (set store.type to " +
                                   in_quotes(section.type) + ")");
    }
  }
}

// "type", then the fields of that type's own section (config/store_sections.h); a type this
// build does not know takes no other field (validate() names the type).
void read_store(const Fields& f, StoreConfig& s) {
  f.read("type", s.type);
  Schema<StoreConfig> schema = {member("type", &StoreConfig::type)};
  for (const core::StoreSection& section : core::store_sections()) {
    if (section.type == s.type) {
      const Schema<StoreConfig>& own = section.fields();
      schema.insert(schema.end(), own.begin(), own.end());
    }
  }
  refuse_fields_of_other_stores(f, s.type, schema);
  read_object(f, schema, s);
}

// An array of objects read by read_one(element, path "name[i]").
template <typename T, typename Read>
void read_array(const Fields& f, std::string_view name, std::vector<T>& out, Read read_one) {
  const Json& arr = f.at(name);
  if (!arr.is_array()) fail(f.path(name), "expected an array");
  out.reserve(arr.size());
  for (std::size_t i = 0; i < arr.size(); ++i) out.push_back(read_one(arr[i], indexed(name, i)));
}

template <typename T>
T read_element(const Json& j, const std::string& path, const Schema<T>& schema) {
  T out;
  read_object(Fields(j, path), schema, out);
  return out;
}

const Schema<Config>& config_schema() {
  static const Schema<Config> s = {
      member("instance_id", &Config::instance_id),
      member("max_keys", &Config::max_keys),
      member("max_key_length", &Config::max_key_length),
      member("max_waiters_per_key", &Config::max_waiters_per_key),
      millis("idle_timeout_ms", &Config::idle_timeout),
      object("leases", &Config::leases, &leases_schema),
      object("cold_keys", &Config::cold_keys, &cold_keys_schema),
      custom<Config>("store",
                     [](const Fields& f, Config& c) {
                       if (f.has("store")) read_store(Fields(f.at("store"), "store"), c.store);
                     }),
      custom<Config>("policies",
                     [](const Fields& f, Config& c) {
                       if (!f.has("policies")) fail("policies", "required");
                       if (f.at("policies").is_array() && f.at("policies").size() > kMaxPolicies) {
                         fail("policies", "at most " + std::to_string(kMaxPolicies) + " policies");
                       }
                       read_array(f, "policies", c.policies, [](const Json& j, std::string path) {
                         return read_element(j, path, policy_schema());
                       });
                     }),
      custom<Config>("groups",
                     [](const Fields& f, Config& c) {
                       if (!f.has("groups")) return;
                       read_array(f, "groups", c.groups, [](const Json& j, std::string path) {
                         return read_element(j, path, group_schema());
                       });
                     }),
  };
  return s;
}

}  // namespace

Config Config::from_json(std::string_view json) {
  const Json root = read_strict(json);
  Config config;
  read_object(Fields(root, ""), config_schema(), config);
  config.validate();
  return config;
}

}  // namespace tollgate
