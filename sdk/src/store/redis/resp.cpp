#include "store/redis/resp.h"

#include <hiredis/hiredis.h>

#include <stdexcept>

namespace tollgate::redis {
namespace {

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = r->type == REDIS_REPLY_STRING   ? Reply::Type::kString
                 : r->type == REDIS_REPLY_STATUS ? Reply::Type::kStatus
                                                 : Reply::Type::kError;
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
  long long announced = 0;  // array elements announced by the reply being read
  ~Impl() { redisReaderFree(reader); }
};

namespace {

// hiredis's own reply functions, with the array constructor behind a bound.
const redisReplyObjectFunctions* g_hiredis = nullptr;

void* bounded_array(const redisReadTask* task, int elements) {
  auto* announced = static_cast<long long*>(task->privdata);
  *announced += elements;
  if (*announced > ReplyParser::kMaxReplyElements) return nullptr;  // hiredis: OOM error
  return g_hiredis->createArray(task, elements);
}

redisReplyObjectFunctions* bounded_functions(const redisReplyObjectFunctions* hiredis) {
  static redisReplyObjectFunctions fns = [hiredis] {
    g_hiredis = hiredis;
    redisReplyObjectFunctions f = *hiredis;
    f.createArray = bounded_array;
    return f;
  }();
  return &fns;
}

}  // namespace

ReplyParser::ReplyParser() : impl_(std::make_unique<Impl>()) {
  if (impl_->reader == nullptr) throw std::bad_alloc();
  impl_->reader->fn = bounded_functions(impl_->reader->fn);
  impl_->reader->privdata = &impl_->announced;
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
    if (impl_->announced > kMaxReplyElements) {
      throw std::runtime_error("RESP protocol error: a reply announced more than " +
                               std::to_string(kMaxReplyElements) + " array elements");
    }
    throw std::runtime_error(std::string("RESP protocol error: ") + impl_->reader->errstr);
  }
  if (raw == nullptr) return false;
  impl_->announced = 0;
  auto* reply = static_cast<redisReply*>(raw);
  out = convert(reply);
  freeReplyObject(reply);
  return true;
}

}  // namespace tollgate::redis
