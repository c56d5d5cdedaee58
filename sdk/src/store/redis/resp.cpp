#include "store/redis/resp.h"

#include <hiredis/hiredis.h>

#include <stdexcept>

namespace tollgate::redis {
namespace {

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_NIL:
      out.type = Reply::Type::kNil;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:  // we speak RESP2; anything else is kept as text
      out.type = Reply::Type::kOther;
      if (r->str != nullptr) out.str.assign(r->str, r->len);
      out.integer = r->integer;
      break;
  }
  return out;
}

}  // namespace

void encode(const Command& cmd, std::string& out) {
  out += '*';
  out += std::to_string(cmd.size());
  out += "\r\n";
  for (const std::string& arg : cmd) {
    out += '$';
    out += std::to_string(arg.size());
    out += "\r\n";
    out += arg;
    out += "\r\n";
  }
}

struct ReplyParser::Impl {
  redisReader* reader = redisReaderCreate();
  ~Impl() { redisReaderFree(reader); }
};

ReplyParser::ReplyParser() : impl_(std::make_unique<Impl>()) {
  if (impl_->reader == nullptr) throw std::bad_alloc();
}

ReplyParser::~ReplyParser() = default;

void ReplyParser::feed(const char* data, std::size_t len) {
  if (redisReaderFeed(impl_->reader, data, len) != REDIS_OK) {
    throw std::runtime_error("RESP reader: cannot buffer input");
  }
}

bool ReplyParser::next(Reply& out) {
  void* raw = nullptr;
  if (redisReaderGetReply(impl_->reader, &raw) != REDIS_OK) {
    throw std::runtime_error(std::string("RESP protocol error: ") + impl_->reader->errstr);
  }
  if (raw == nullptr) return false;
  auto* reply = static_cast<redisReply*>(raw);
  out = convert(reply);
  freeReplyObject(reply);
  return true;
}

}  // namespace tollgate::redis
