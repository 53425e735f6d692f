#pragma once
// A small XPath subset for route tests: enough to point at any value of an e-melding.
//
//   /MsgHead/MsgInfo/Type/@V              absolute path; prefixes (ns:Name) match by local name
//   //Patient/Ident/Id                    // anywhere below
//   MsgHead/Document[2]/RefDoc/MsgType/@V relative paths start at the document
//   //Ident[TypeId/@V='FNR']/Id           predicates: [n], [@a='v'], [child='v'],
//   //Id[text()='8100001']                [child/@a='v'], [text()='v']
//   //Organisation/*                      * any element; text() the element's own text
//
// An element's value is its text content, trimmed; an attribute's its value.

#include <string>
#include <string_view>
#include <vector>

#include "engine/core/result.hpp"

namespace budstikke::emelding {

// Values of every node the expression selects, in document order. An error for XML that
// is not well-formed or an expression outside the subset (with the offset).
Result<std::vector<std::string>> xpath_values(std::string_view xml, std::string_view expr);

}  // namespace budstikke::emelding
