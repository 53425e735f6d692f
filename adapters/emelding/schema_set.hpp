#pragma once
// The official XSDs, loaded once into a Xerces grammar pool that every decoder shares.
//
// Imports are resolved by namespace through the OASIS catalogue in the schema directory
// (ehelseCatalog.xml) and, for namespaces it does not list, by the targetNamespace of every
// .xsd found under the directory. An import that resolves to neither is never fetched from
// the network: it gets an empty stand-in grammar, so elements of that namespace fail
// validation with a clear message instead. After loading, the pool is locked (read-only),
// which makes it safe to share between threads.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <xercesc/util/XercesDefs.hpp>

#include "engine/core/result.hpp"

namespace XERCES_CPP_NAMESPACE {
class XMLGrammarPool;
class XMLEntityResolver;
}  // namespace XERCES_CPP_NAMESPACE

namespace budstikke::emelding {

namespace fastxsd {
class Compiled;
}

class SchemaSet {
 public:
  // Loads every schema of the directory. Fails only when the directory is missing or no
  // grammar at all could be loaded; individual schemas that fail are listed in warnings().
  static Result<std::shared_ptr<const SchemaSet>> load(const std::string& dir);
  ~SchemaSet();
  SchemaSet(const SchemaSet&) = delete;
  SchemaSet& operator=(const SchemaSet&) = delete;

  XERCES_CPP_NAMESPACE::XMLGrammarPool* pool() const { return pool_.get(); }
  XERCES_CPP_NAMESPACE::XMLEntityResolver* resolver() const { return resolver_.get(); }
  const std::string& directory() const { return dir_; }
  // namespace -> schema file
  const std::map<std::string, std::string>& namespaces() const { return files_; }
  bool has_namespace(const std::string& ns) const { return loaded_.count(ns) > 0; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  size_t grammar_count() const { return loaded_.size(); }
  // The grammars compiled for the fast validator (fast_xsd.hpp).
  const std::shared_ptr<const fastxsd::Compiled>& compiled() const { return compiled_; }

 private:
  SchemaSet() = default;
  std::string dir_;
  std::map<std::string, std::string> files_;
  std::map<std::string, bool> loaded_;
  std::vector<std::string> warnings_;
  std::unique_ptr<XERCES_CPP_NAMESPACE::XMLGrammarPool> pool_;
  std::unique_ptr<XERCES_CPP_NAMESPACE::XMLEntityResolver> resolver_;
  std::shared_ptr<const fastxsd::Compiled> compiled_;
};

}  // namespace budstikke::emelding
