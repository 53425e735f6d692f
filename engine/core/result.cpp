#include "engine/core/result.hpp"

namespace budstikke {

const char* domain_name(ErrorDomain d) {
  switch (d) {
    case ErrorDomain::kKafka:
      return "kafka";
    case ErrorDomain::kConfig:
      return "config";
    case ErrorDomain::kCodec:
      return "codec";
    case ErrorDomain::kValidation:
      return "validation";
    case ErrorDomain::kTransport:
      return "transport";
    case ErrorDomain::kIo:
      return "io";
    case ErrorDomain::kInternal:
      return "internal";
  }
  return "unknown";
}

std::string Error::to_string() const {
  std::string s = domain_name(domain);
  s += retriable ? " (retriable): " : ": ";
  s += message;
  return s;
}

}  // namespace budstikke
