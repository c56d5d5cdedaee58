# Embeds Lua scripts in a C++ header: run at build time by sdk/CMakeLists.txt.
#   cmake -DOUT=<header> -DSCRIPTS="<name>=<file>;..." -P embed_lua.cmake
# For each script <name> (snake_case) the header holds, in namespace tollgate::redis::lua:
#   k<Name>Text   the file's text, byte for byte (what SCRIPT LOAD is sent)
#   k<Name>Sha1   its SHA1 in hex, as Redis names the script for EVALSHA
#   k<Name>Slots  the ARGV slot names of the script's `local slots = {...}` table, in order
cmake_minimum_required(VERSION 3.25)

set(body "")
foreach(entry IN LISTS SCRIPTS)
  string(REGEX MATCH "^([a-z_]+)=(.+)$" _ "${entry}")
  set(name "${CMAKE_MATCH_1}")
  set(file "${CMAKE_MATCH_2}")
  file(READ "${file}" text)
  file(SHA1 "${file}" sha)
  if(text MATCHES "\\)tollgate_lua\"")
    message(FATAL_ERROR "${file}: holds the raw string's end marker")
  endif()
  if(NOT text MATCHES "local slots = {([^}]*)}")
    message(FATAL_ERROR "${file}: no `local slots = {...}` table of ARGV names")
  endif()
  string(REGEX MATCHALL "'[a-z_0-9]+'" quoted "${CMAKE_MATCH_1}")
  set(slots "")
  list(LENGTH quoted count)
  foreach(q IN LISTS quoted)
    string(REPLACE "'" "\"" q "${q}")
    list(APPEND slots "${q}")
  endforeach()
  list(JOIN slots ", " slots)
  # lease -> Lease, give_back -> GiveBack
  string(REPLACE "_" ";" parts "${name}")
  set(camel "")
  foreach(part IN LISTS parts)
    string(SUBSTRING "${part}" 0 1 first)
    string(SUBSTRING "${part}" 1 -1 rest)
    string(TOUPPER "${first}" first)
    string(APPEND camel "${first}${rest}")
  endforeach()
  string(APPEND body
    "inline constexpr std::string_view k${camel}Text = R\"tollgate_lua(${text})tollgate_lua\";\n"
    "inline constexpr std::string_view k${camel}Sha1 = \"${sha}\";\n"
    "inline constexpr std::array<std::string_view, ${count}> k${camel}Slots{${slots}};\n\n")
endforeach()

set(content "// Generated at build time from sdk/src/redis/lua/*.lua by cmake/embed_lua.cmake.\n#pragma once\n\n#include <array>\n#include <string_view>\n\nnamespace tollgate::redis::lua {\n\n${body}}  // namespace tollgate::redis::lua\n")
file(WRITE "${OUT}" "${content}")
