#include "adapters/emelding/schema_set.hpp"

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <xercesc/framework/LocalFileInputSource.hpp>
#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/framework/XMLGrammarPoolImpl.hpp>
#include <xercesc/parsers/XercesDOMParser.hpp>
#include <xercesc/sax/ErrorHandler.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/util/XMLEntityResolver.hpp>
#include <xercesc/util/XMLResourceIdentifier.hpp>
#include <xercesc/validators/common/Grammar.hpp>

#include "adapters/emelding/fast_xsd.hpp"
#include "adapters/emelding/xml.hpp"

namespace budstikke::emelding {

namespace x = XERCES_CPP_NAMESPACE;
namespace fs = std::filesystem;

namespace {

std::string read_head(const fs::path& p, size_t n) {
  std::ifstream in(p, std::ios::binary);
  std::string s(n, '\0');
  in.read(s.data(), static_cast<std::streamsize>(n));
  s.resize(static_cast<size_t>(in.gcount()));
  return s;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream o;
  o << in.rdbuf();
  return o.str();
}

bool is_remote(const std::string& s) {
  return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0 || s.rfind("ftp://", 0) == 0;
}

// Resolves schema imports by namespace; never lets Xerces go to the network.
class Resolver final : public x::XMLEntityResolver {
 public:
  Resolver(const std::map<std::string, std::string>* files, std::vector<std::string>* warnings)
      : files_(files), warnings_(warnings) {}

  x::InputSource* resolveEntity(x::XMLResourceIdentifier* ri) override {
    const std::string ns = xml::utf8(ri->getNameSpace());
    const std::string sys = xml::utf8(ri->getSystemId());
    const std::string base = xml::utf8(ri->getBaseURI());
    const auto type = ri->getResourceIdentifierType();
    if (sys.size() > 4 && sys.compare(sys.size() - 4, 4, ".dtd") == 0) {
      // DTDs referenced by schema documents (e.g. XMLSchema.dtd): an empty external subset.
      static const char kEmpty[] = "";
      return new x::MemBufInputSource(reinterpret_cast<const XMLByte*>(kEmpty), 0,
                                      ri->getSystemId(), false);
    }
    if (type == x::XMLResourceIdentifier::SchemaImport ||
        type == x::XMLResourceIdentifier::SchemaGrammar) {
      if (const auto it = files_->find(ns); it != files_->end()) return local(it->second);
    }
    if (type == x::XMLResourceIdentifier::SchemaInclude ||
        type == x::XMLResourceIdentifier::SchemaRedefine) {
      // Included by absolute URL: look for the same file name beside the including schema.
      if (is_remote(sys) && !base.empty()) {
        std::string b = base;
        if (b.rfind("file://", 0) == 0) b = b.substr(7);
        const fs::path cand = fs::path(b).parent_path() / fs::path(sys).filename();
        if (fs::exists(cand)) return local(cand.string());
      }
    }
    if (is_remote(sys) || sys.empty()) {
      // Unknown namespace: an empty stand-in grammar, never a network fetch.
      if (warnings_)
        warnings_->push_back("no local schema for namespace '" + ns + "' (" + sys +
                             "): elements of it will not validate");
      stub_ = "<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'" +
              (ns.empty() ? std::string() : " targetNamespace='" + ns + "'") + "/>";
      return new x::MemBufInputSource(reinterpret_cast<const XMLByte*>(stub_.data()), stub_.size(),
                                      ri->getSystemId(), false);
    }
    return nullptr;  // a relative local file: Xerces resolves it against the base
  }

 private:
  static x::InputSource* local(const std::string& file) {
    const auto f = xml::utf16(file);
    return new x::LocalFileInputSource(xml::xc(f));
  }
  const std::map<std::string, std::string>* files_;
  std::vector<std::string>* warnings_;
  std::string stub_;  // MemBufInputSource does not copy; kept until the next call
};

class Collect final : public x::ErrorHandler {
 public:
  void warning(const x::SAXParseException&) override {}
  void error(const x::SAXParseException& e) override { add(e); }
  void fatalError(const x::SAXParseException& e) override { add(e); }
  void resetErrors() override { errors.clear(); }
  std::vector<std::string> errors;

 private:
  void add(const x::SAXParseException& e) {
    errors.push_back(xml::utf8(e.getSystemId()) + ":" + std::to_string(e.getLineNumber()) + ": " +
                     xml::utf8(e.getMessage()));
  }
};

}  // namespace

SchemaSet::~SchemaSet() = default;

Result<std::shared_ptr<const SchemaSet>> SchemaSet::load(const std::string& dir) {
  xml::ensure_initialized();
  if (dir.empty() || !fs::is_directory(dir))
    return Error::permanent(ErrorDomain::kConfig, "schema directory '" + dir + "' does not exist");
  std::shared_ptr<SchemaSet> s(new SchemaSet());
  s->dir_ = fs::canonical(dir).string();

  // 1. The catalogue: namespace -> file, for files that exist.
  const fs::path catalog = fs::path(s->dir_) / "ehelseCatalog.xml";
  if (fs::exists(catalog)) {
    std::string text = read_all(catalog);
    text = std::regex_replace(text, std::regex("<!--[\\s\\S]*?-->"), "");
    const std::regex uri("<uri\\s+name=\"([^\"]+)\"\\s+uri=\"([^\"]+)\"");
    for (std::sregex_iterator it(text.begin(), text.end(), uri), end; it != end; ++it) {
      const fs::path f = fs::path(s->dir_) / (*it)[2].str();
      if (fs::exists(f)) s->files_.emplace((*it)[1].str(), f.string());
    }
  }
  // 2. Every other .xsd by its targetNamespace (folders starting with '_' are variants).
  std::vector<fs::path> xsds;
  for (auto it = fs::recursive_directory_iterator(s->dir_);
       it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_directory() && it->path().filename().string().rfind('_', 0) == 0) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && it->path().extension() == ".xsd") xsds.push_back(it->path());
  }
  std::sort(xsds.begin(), xsds.end());
  const std::regex tns("targetNamespace\\s*=\\s*\"([^\"]+)\"");
  for (const auto& p : xsds) {
    const std::string head = read_head(p, 8192);
    std::smatch m;
    if (std::regex_search(head, m, tns)) s->files_.emplace(m[1].str(), p.string());
  }

  // 3. Load each namespace's grammar into the pool.
  s->pool_ = std::make_unique<x::XMLGrammarPoolImpl>(x::XMLPlatformUtils::fgMemoryManager);
  s->resolver_ = std::make_unique<Resolver>(&s->files_, &s->warnings_);
  {
    x::XercesDOMParser parser(nullptr, x::XMLPlatformUtils::fgMemoryManager, s->pool_.get());
    Collect errors;
    parser.setErrorHandler(&errors);
    parser.setXMLEntityResolver(s->resolver_.get());
    parser.setDoNamespaces(true);
    parser.setDoSchema(true);
    parser.setHandleMultipleImports(true);
    parser.setValidationScheme(x::XercesDOMParser::Val_Auto);
    for (const auto& [ns, file] : s->files_) {
      errors.resetErrors();
      const auto f = xml::utf16(file);
      x::Grammar* g = nullptr;
      try {
        g = parser.loadGrammar(xml::xc(f), x::Grammar::SchemaGrammarType, true);
      } catch (...) {
        g = nullptr;
      }
      if (!g || !errors.errors.empty()) {
        s->warnings_.push_back("schema " + file + " for '" + ns + "' did not load cleanly" +
                               (errors.errors.empty() ? "" : ": " + errors.errors.front()));
      }
      if (g) s->loaded_[ns] = true;
    }
  }
  // Every namespace that ended up in the pool, including ones pulled in by imports.
  {
    x::RefHashTableOfEnumerator<x::Grammar> grammars = s->pool_->getGrammarEnumerator();
    while (grammars.hasMoreElements()) {
      x::Grammar& g = grammars.nextElement();
      s->loaded_[xml::utf8(g.getTargetNamespace())] = true;
    }
  }
  if (s->loaded_.empty())
    return Error::permanent(ErrorDomain::kConfig, "no schema could be loaded from " + s->dir_);
  s->pool_->lockPool();
  s->compiled_ = fastxsd::Compiled::build(s->pool_.get());
  return std::shared_ptr<const SchemaSet>(std::move(s));
}

}  // namespace budstikke::emelding
