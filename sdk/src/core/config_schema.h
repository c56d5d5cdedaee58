// A schema per config struct: its JSON fields, each with how it is read. One list drives
// both the fields an object may have (anything else is "unknown field") and the reads, in
// the order listed, so a field cannot be allowed and then forgotten, or read and refused.
#pragma once

#include <functional>
#include <string_view>
#include <vector>

#include "core/json_reader.h"

namespace tollgate::core::json {

template <typename T>
struct SchemaField {
  std::string_view name;
  std::function<void(const Fields& object, T& out)> read;  // called whether present or not
};
template <typename T>
using Schema = std::vector<SchemaField<T>>;

// A member read as its type reads (string, number, whole number), when present.
template <typename T, typename M>
SchemaField<T> member(std::string_view name, M T::*m) {
  return {name, [name, m](const Fields& f, T& out) { f.read(name, out.*m); }};
}

// A duration member, milliseconds in JSON (name ends in _ms).
template <typename T>
SchemaField<T> millis(std::string_view name, Nanos T::*m) {
  return {name, [name, m](const Fields& f, T& out) { f.read_ms(name, out.*m); }};
}

// A member that is an object of its own schema, when present.
template <typename T, typename M>
SchemaField<T> object(std::string_view name, M T::*m, const Schema<M>& (*schema)());

// Any other read: `read` looks at the field itself (required, defaults, checks).
template <typename T>
SchemaField<T> custom(std::string_view name, std::function<void(const Fields&, T&)> read) {
  return {name, std::move(read)};
}

// Reads the object into out: refuses fields the schema does not list, then reads each.
template <typename T>
void read_object(const Fields& f, const Schema<T>& schema, T& out) {
  std::vector<std::string_view> names;
  names.reserve(schema.size());
  for (const SchemaField<T>& s : schema) names.push_back(s.name);
  f.allow_only(names.begin(), names.end());
  for (const SchemaField<T>& s : schema) s.read(f, out);
}

template <typename T, typename M>
SchemaField<T> object(std::string_view name, M T::*m, const Schema<M>& (*schema)()) {
  return {name, [name, m, schema](const Fields& f, T& out) {
            if (f.has(name)) read_object(Fields(f.at(name), f.path(name)), schema(), out.*m);
          }};
}

}  // namespace tollgate::core::json
