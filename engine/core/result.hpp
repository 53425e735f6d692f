#pragma once
// Errors as values. The message path never throws: every fallible step returns a
// Result<T>, which holds either a T or an Error saying which domain failed, whether a
// retry can help, and a precise human-readable reason.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace budstikke {

enum class ErrorDomain { kKafka, kConfig, kCodec, kValidation, kTransport, kIo, kInternal };

const char* domain_name(ErrorDomain d);

struct Error {
  ErrorDomain domain = ErrorDomain::kInternal;
  int code = 0;            // domain-specific code (e.g. rd_kafka_resp_err_t)
  bool retriable = false;  // true when the same operation may succeed later
  std::string message;

  static Error permanent(ErrorDomain d, std::string msg, int code = 0) {
    return Error{d, code, false, std::move(msg)};
  }
  static Error transient(ErrorDomain d, std::string msg, int code = 0) {
    return Error{d, code, true, std::move(msg)};
  }
  std::string to_string() const;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

struct Unit {};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace budstikke
