// HL7 v2 parser and writer: paths, escapes, round trips, and property tests with generated
// messages using random encoding characters, escapes and repetitions.

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "adapters/hl7v2/message.hpp"
#include "adapters/mllp/framer.hpp"

using namespace budstikke::hl7v2;

namespace {

Message must_parse(std::string_view text) {
  auto r = Message::parse(text);
  if (auto* e = std::get_if<ParseError>(&r)) {
    ADD_FAILURE() << e->to_string();
    return std::get<Message>(Message::parse("MSH|^~\\&|"));
  }
  return std::get<Message>(std::move(r));
}

constexpr const char* kAdt =
    "MSH|^~\\&|DIPS|NORDVIK|RIS|NORDVIK|20261120101500||ADT^A01^ADT_A01|MSG0001|P|2.5|||AL|NE||"
    "8859/1\r"
    "EVN|A01|20261120101500\r"
    "PID|1||12837512393^^^NOR^FNR~A123^^^NORDVIK^PI||Fjellheim^Kari^^^^^L||19750312|F|||Fjordveien "
    "1^^Fjordbyen^^9990^NOR\r"
    "PV1|1|I|MED^201^1^NORDVIK||||8100011^Lindqvist^Mari|||MED\r"
    "OBX|1|ST|TXT^Note||Line one\\.br\\line two \\F\\ pipe \\S\\ hat \\T\\ amp \\R\\ tilde \\E\\ "
    "slash||||||F\r";

// Up to `max_len` characters drawn from `alphabet`.
std::string random_text(std::mt19937& rng, const std::string& alphabet, int max_len) {
  std::string v;
  const int n = std::uniform_int_distribution<int>(0, max_len)(rng);
  for (int i = 0; i < n; ++i)
    v.push_back(alphabet[std::uniform_int_distribution<size_t>(0, alphabet.size() - 1)(rng)]);
  return v;
}

}  // namespace

TEST(Hl7Message, PathsRepetitionsComponents) {
  const Message m = must_parse(kAdt);
  EXPECT_EQ(m.get("MSH-1"), "|");
  EXPECT_EQ(m.get("MSH-2"), "^~\\&");
  EXPECT_EQ(m.get("MSH-9-1"), "ADT");
  EXPECT_EQ(m.get("MSH-9-2"), "A01");
  EXPECT_EQ(m.get("MSH-10"), "MSG0001");
  EXPECT_EQ(m.get("PID-3-1"), "12837512393");
  EXPECT_EQ(m.get("PID-3(2)-1"), "A123");
  EXPECT_EQ(m.get("PID-3[2]-4"), "NORDVIK");
  EXPECT_EQ(m.get("PID-5-1"), "Fjellheim");
  EXPECT_EQ(m.get("PID-5-2"), "Kari");
  EXPECT_EQ(m.get("PID-7"), "19750312");
  EXPECT_EQ(m.get("PID-7-1"), "19750312");  // component 1 of a simple field: the field
  EXPECT_EQ(m.get("PID-3(3)-1"), std::nullopt);
  EXPECT_EQ(m.get("PID-99"), std::nullopt);
  EXPECT_EQ(m.get("ZZZ-1"), std::nullopt);
  EXPECT_EQ(m.get("OBX(1)-3-2"), "Note");
  EXPECT_EQ(m.get("OBX(2)-3-2"), std::nullopt);
  EXPECT_EQ(m.repetitions("PID-3"), 2u);
  EXPECT_EQ(m.count("OBX"), 1u);
  EXPECT_EQ(m.charset(), "8859/1");
}

TEST(Hl7Message, EscapesAreDecodedAndFormattingKept) {
  const Message m = must_parse(kAdt);
  EXPECT_EQ(m.get("OBX-5"), "Line one\\.br\\line two | pipe ^ hat & amp ~ tilde \\ slash");
  ParseOptions render;
  render.formatting = Formatting::kRender;
  const Message r = std::get<Message>(Message::parse(kAdt, render));
  EXPECT_EQ(r.get("OBX-5"), "Line one\nline two | pipe ^ hat & amp ~ tilde \\ slash");
  EXPECT_EQ(unescape("\\X4869\\!", Delimiters{}), "Hi!");
  EXPECT_EQ(unescape("a\\H\\b\\N\\c", Delimiters{}), "a\\H\\b\\N\\c");
  EXPECT_EQ(unescape("a\\H\\b\\N\\c", Delimiters{}, Formatting::kRender), "abc");
  EXPECT_EQ(unescape("lone \\ backslash", Delimiters{}), "lone \\ backslash");
}

TEST(Hl7Message, RoundTripReproducesTheInput) {
  const Message m = must_parse(kAdt);
  EXPECT_EQ(m.encode(), std::string(kAdt).substr(0, std::string(kAdt).size() - 1));
  const std::string lf = "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|1|P|2.3\nPID|1||42\n";
  EXPECT_EQ(must_parse(lf).encode() + "\n", lf);
}

TEST(Hl7Message, SetCreatesFieldsAndEscapes) {
  Message m = must_parse(kAdt);
  ASSERT_TRUE(m.set("PID-5-1", "Ny|Navn^med&tegn").ok());
  EXPECT_EQ(m.get("PID-5-1"), "Ny|Navn^med&tegn");
  EXPECT_EQ(m.get("PID-5-2"), "Kari");
  ASSERT_TRUE(m.set("PV1-50-2-3", "deep").ok());
  EXPECT_EQ(m.get("PV1-50-2-3"), "deep");
  ASSERT_TRUE(m.set("ZBS-1", "new segment").ok());
  EXPECT_EQ(m.get("ZBS-1"), "new segment");
  ASSERT_TRUE(m.set("MSH-10", "MSG0002").ok());
  EXPECT_EQ(m.get("MSH-10"), "MSG0002");
  EXPECT_FALSE(m.set("MSH-1", "#").ok());
  EXPECT_FALSE(m.set("nonsense", "x").ok());
}

TEST(Hl7Message, PreciseErrors) {
  auto e = Message::parse("PID|1||x\r");
  ASSERT_TRUE(std::holds_alternative<ParseError>(e));
  EXPECT_NE(std::get<ParseError>(e).to_string().find("MSH"), std::string::npos);
  e = Message::parse("MSH|^~|A|B\r");
  ASSERT_TRUE(std::holds_alternative<ParseError>(e));
  EXPECT_EQ(std::get<ParseError>(e).path, "MSH-2");
  e = Message::parse("MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\rPID|1\r*** garbage\r");
  ASSERT_TRUE(std::holds_alternative<ParseError>(e));
  EXPECT_EQ(std::get<ParseError>(e).segment, 3);
  EXPECT_GT(std::get<ParseError>(e).offset, 40u);
  e = Message::parse("MSH|^~\\&|A|B|C|D|2026|||1|P|2.5\r");
  ASSERT_TRUE(std::holds_alternative<ParseError>(e));
  EXPECT_EQ(std::get<ParseError>(e).path, "MSH-9");
}

TEST(Hl7Message, Latin1IsConvertedUtf8Kept) {
  const std::string latin =
      std::string("MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5|||||NOR|8859/1\rPID|1||||M\xC6LAND\r");
  EXPECT_EQ(must_parse(latin).get("PID-5"), "M\xC3\x86LAND");
  const std::string utf =
      "MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5|||||NOR|UNICODE UTF-8\rPID|1||||BJ\xC3\x98RN\r";
  EXPECT_EQ(must_parse(utf).get("PID-5"), "BJ\xC3\x98RN");
}

TEST(Hl7Stream, MllpFramesBatchesAndConcatenation) {
  const std::string a = "MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\rPID|1\r";
  const std::string b = "MSH|^~\\&|A|B|C|D|2026||ADT^A08|2|P|2.5\rPID|2\r";
  auto s = parse_stream(budstikke::mllp::frame(a) + budstikke::mllp::frame(b));
  ASSERT_TRUE(std::holds_alternative<Stream>(s));
  EXPECT_EQ(std::get<Stream>(s).messages.size(), 2u);
  EXPECT_EQ(std::get<Stream>(s).frames, 2u);
  s = parse_stream("FHS|^~\\&|X\rBHS|^~\\&|Y\r" + a + b + "BTS|2\rFTS|1\r");
  ASSERT_TRUE(std::holds_alternative<Stream>(s));
  const Stream& st = std::get<Stream>(s);
  EXPECT_EQ(st.messages.size(), 2u);
  EXPECT_EQ(st.batch_count(), 1u);
  EXPECT_EQ(st.get("BTS-1"), "2");
  EXPECT_EQ(st.get("BHS-3"), "Y");
  auto bad = parse_stream(std::string("\x0B") + a);
  ASSERT_TRUE(std::holds_alternative<ParseError>(bad));
}

TEST(Hl7Mllp, DeframerHandlesChunksNoiseAndLimits) {
  budstikke::mllp::Deframer d(100);
  std::vector<std::string> out;
  const std::string stream =
      "noise" + budstikke::mllp::frame("one") + "\r\n" + budstikke::mllp::frame("two");
  for (const char c : stream) d.feed(std::string_view(&c, 1), out);  // byte by byte
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], "one");
  EXPECT_EQ(out[1], "two");
  EXPECT_EQ(d.skipped(), 7u);
  out.clear();
  EXPECT_EQ(d.feed(budstikke::mllp::frame(std::string(200, 'x')), out),
            budstikke::mllp::Deframer::Status::kTooLarge);
  EXPECT_TRUE(out.empty());
  d.feed(budstikke::mllp::frame("after"), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], "after");
}

namespace {

// The de-framer's rules, one byte at a time: the oracle for the run-at-a-time one.
struct ReferenceDeframer {
  size_t max;
  std::string buf;
  bool in_frame = false, end_seen = false, discarding = false;
  size_t skipped = 0;
  bool feed(std::string_view bytes, std::vector<std::string>& out) {
    bool too_large = false;
    for (size_t i = 0; i < bytes.size(); ++i) {
      const char c = bytes[i];
      if (!in_frame) {
        if (c == '\x0b') {
          in_frame = true;
          end_seen = discarding = false;
          buf.clear();
        } else {
          ++skipped;
        }
        continue;
      }
      if (end_seen) {
        if (!discarding) out.push_back(std::move(buf));
        buf.clear();
        in_frame = end_seen = discarding = false;
        if (c != '\r') --i;
        continue;
      }
      if (c == '\x1c') {
        end_seen = true;
        continue;
      }
      if (c == '\x0b' && buf.empty()) continue;
      if (discarding) continue;
      if (buf.size() >= max) {
        discarding = true;
        buf.clear();
        too_large = true;
        continue;
      }
      buf.push_back(c);
    }
    return too_large;
  }
};

}  // namespace

// Random streams rich in 0x0B, 0x1C and CR, fed in random chunks to de-framers with small
// limits: the same frames, the same too-large reports and the same skipped count as the
// byte-at-a-time rules.
TEST(Hl7Mllp, DeframerMatchesTheByteAtATimeRules) {
  std::mt19937 rng(7);
  const std::string alphabet = "\x0b\x1c\r\nab";
  for (int round = 0; round < 3000; ++round) {
    std::string stream(rng() % 200, '\0');
    for (auto& c : stream) c = alphabet[rng() % alphabet.size()];
    const size_t max = rng() % 12;
    budstikke::mllp::Deframer d(max);
    ReferenceDeframer ref{max, {}};
    std::vector<std::string> got, want;
    for (size_t i = 0; i < stream.size();) {
      const size_t step = 1 + rng() % 17;
      const auto part = std::string_view(stream).substr(i, step);
      const bool too_large = d.feed(part, got) == budstikke::mllp::Deframer::Status::kTooLarge;
      EXPECT_EQ(too_large, ref.feed(part, want)) << "round " << round << " at " << i;
      i += step;
    }
    ASSERT_EQ(got, want) << "round " << round;
    EXPECT_EQ(d.skipped(), ref.skipped) << "round " << round;
    EXPECT_EQ(d.in_frame(), ref.in_frame) << "round " << round;
    EXPECT_EQ(d.buffered(), ref.buf.size()) << "round " << round;
  }
}

// Property: for random delimiter sets and random values (including every delimiter, escape
// and control character), set() then get() returns the value, and re-encoding with another
// random delimiter set keeps every value.
TEST(Hl7Property, RandomDelimitersAndValuesSurviveEncodeAndReencode) {
  std::mt19937 rng(20261122);
  const std::string specials = "|^~\\&#!$%*+/:;=?@_{}";
  auto pick_delims = [&] {
    std::string pool = specials;
    std::shuffle(pool.begin(), pool.end(), rng);
    Delimiters d;
    d.field = pool[0];
    d.component = pool[1];
    d.repetition = pool[2];
    d.escape = pool[3];
    d.subcomponent = pool[4];
    return d;
  };
  const std::string alphabet = "abcXYZ019 .-" + specials;
  auto random_value = [&] { return random_text(rng, alphabet, 12); };
  int checked = 0;
  for (int round = 0; round < 300; ++round) {
    const Delimiters d = pick_delims();
    std::string msh = "MSH";
    msh.push_back(d.field);
    msh += d.encoding_characters();
    msh += std::string(1, d.field) + "APP" + d.field + "FAC" + d.field + d.field + d.field +
           "2026" + d.field + d.field + "ADT" + d.component + "A01" + d.field + "ID" +
           std::to_string(round) + d.field + "P" + d.field + "2.5";
    Message m = must_parse(msh);
    std::vector<std::pair<std::string, std::string>> set;
    for (int k = 0; k < 6; ++k) {
      const std::string path = "PID-" + std::to_string(1 + k % 5) + "(" +
                               std::to_string(1 + k % 3) + ")-" + std::to_string(1 + k % 4) + "-" +
                               std::to_string(1 + k % 2);
      const std::string value = random_value();
      ASSERT_TRUE(m.set(path, value).ok()) << path;
      set.emplace_back(path, value);
    }
    // Later writes may overwrite earlier ones at the same path: check the last write.
    std::map<std::string, std::string> last(set.begin(), set.end());
    for (const auto& [p, v] : last) {
      EXPECT_EQ(m.get(p).value_or("<absent>"), v) << p;
      ++checked;
    }
    const Delimiters other = pick_delims();
    const std::string re = m.encode(other, "\r\n");
    auto again = Message::parse(re);
    ASSERT_TRUE(std::holds_alternative<Message>(again))
        << std::get<ParseError>(again).to_string() << "\n"
        << re;
    const Message& m2 = std::get<Message>(again);
    EXPECT_EQ(m2.delimiters().field, other.field);
    for (const auto& [p, v] : last)
      EXPECT_EQ(m2.get(p).value_or("<absent>"), v) << p << " in " << re;
    EXPECT_EQ(m2.get("MSH-10"), "ID" + std::to_string(round));
    // And back: parse -> encode with its own delimiters reproduces the text.
    EXPECT_EQ(m2.encode(m2.delimiters(), "\r\n"), re);
  }
  std::printf("property: %d values through random delimiter sets\n", checked);
}

// Found by fuzz_hl7v2: a hex escape with bytes that are not UTF-8 must not yield invalid
// UTF-8 (the canonical event's JSON would fail to serialise).
TEST(Hl7Message, HexEscapeWithNonUtf8BytesStaysValidUtf8) {
  const Message m = must_parse("MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\rPID|1||||M\\XC6\\LAND\r");
  EXPECT_EQ(m.get("PID-5"), "M\xC3\x86LAND");
}

// get_raw reads fields from an index built at parse time (and rebuilt by set()): it must
// give what splitting the segment text gives, for every segment, occurrence, field,
// repetition and component of random messages with random delimiters, MSH-1 and MSH-2
// included, and nothing past the last field.
TEST(Hl7Property, FieldIndexAgreesWithSplittingTheText) {
  std::mt19937 rng(20261201);
  auto split = [](std::string_view s, char sep) {
    std::vector<std::string_view> out;
    size_t b = 0;
    while (true) {
      const size_t e = s.find(sep, b);
      out.push_back(s.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
      if (e == std::string_view::npos) break;
      b = e + 1;
    }
    return out;
  };
  const std::string specials = "|^~\\&#!$%*+/";
  int checked = 0;
  for (int round = 0; round < 200; ++round) {
    std::string pool = specials;
    std::shuffle(pool.begin(), pool.end(), rng);
    const char fs = pool[0], cs = pool[1], rs = pool[2], es = pool[3], ss = pool[4];
    const std::string alphabet = std::string("ab1 ") + fs + cs + rs + ss;
    auto value = [&] { return random_text(rng, alphabet, 10); };
    std::string text = std::string("MSH") + fs + cs + rs + es + ss + fs + "A" + fs + fs + fs + fs +
                       fs + fs + "ADT" + cs + "A01" + fs + "ID" + std::to_string(round);
    const char* ids[] = {"PID", "OBX", "NTE", "ZXY"};
    const int segments = std::uniform_int_distribution<int>(1, 6)(rng);
    for (int k = 0; k < segments; ++k) {
      text += '\r';
      text += ids[std::uniform_int_distribution<int>(0, 3)(rng)];
      const int fields = std::uniform_int_distribution<int>(0, 8)(rng);
      for (int f = 0; f < fields; ++f) text += fs + value();
    }
    Message m = must_parse(text);
    if (round % 2 == 1) {  // the index after set() (which updates it in place)
      ASSERT_TRUE(m.set("ZZZ-3-2", "v").ok());
      ASSERT_TRUE(m.set("MSH-4", "FAC").ok());
      // Fields of any segment made longer, shorter or empty, the last one appended.
      for (int k = 0; k < 4; ++k) {
        const std::string path = std::string(ids[std::uniform_int_distribution<int>(0, 3)(rng)]) +
                                 "-" +
                                 std::to_string(std::uniform_int_distribution<int>(1, 9)(rng));
        ASSERT_TRUE(m.set(path, value()).ok()) << path;
      }
      ASSERT_TRUE(m.set("MSH-4", "").ok());
      // The segments are those a parse of the new text finds.
      const Message fresh = must_parse(m.text());
      ASSERT_EQ(fresh.segment_count(), m.segment_count()) << m.text();
      for (size_t s = 0; s < m.segment_count(); ++s)
        ASSERT_EQ(fresh.segment_raw(s), m.segment_raw(s)) << s << " in " << m.text();
    }
    std::map<std::string, int> seen;
    for (size_t s = 0; s < m.segment_count(); ++s) {
      const std::string_view raw = m.segment_raw(s);
      const std::string id(raw.substr(0, 3));
      const int occurrence = ++seen[id];
      const bool msh = id == "MSH";
      const auto pieces = split(raw, fs);
      for (int f = 1; f <= static_cast<int>(pieces.size()) + 1; ++f) {
        Path p{id, occurrence, f, 1, 0, 0};
        std::optional<std::string_view> want;
        if (msh && f == 1)
          want = raw.substr(3, 1);
        else if (static_cast<size_t>(msh ? f - 1 : f) < pieces.size())
          want = pieces[static_cast<size_t>(msh ? f - 1 : f)];
        if (msh && f <= 2) {  // the delimiters themselves, whole, whatever the component
          EXPECT_EQ(m.get_raw(p), want) << id << "-" << f << " in " << raw;
          p.component = 2;
          EXPECT_EQ(m.get_raw(p), want) << id << "-" << f << "-2 in " << raw;
          continue;
        }
        if (!want) {
          EXPECT_FALSE(m.get_raw(p).has_value()) << id << "-" << f << " in " << raw;
          EXPECT_EQ(m.repetitions(p), 0u);
          continue;
        }
        const auto reps = split(*want, rs);
        EXPECT_EQ(m.repetitions(p), reps.size()) << id << "-" << f << " in " << raw;
        for (size_t r = 0; r < reps.size(); ++r) {
          const auto comps = split(reps[r], cs);
          for (size_t c = 0; c <= comps.size(); ++c) {
            p.repetition = static_cast<int>(r + 1);
            p.component = static_cast<int>(c + 1);
            const auto got = m.get_raw(p);
            if (c == comps.size())
              EXPECT_FALSE(got.has_value()) << id << "-" << f << "(" << r + 1 << ")-" << c + 1;
            else
              EXPECT_EQ(got, comps[c]) << id << "-" << f << "(" << r + 1 << ")-" << c + 1;
            ++checked;
          }
        }
      }
    }
  }
  std::printf("field index: %d components checked against the split text\n", checked);
}

// set() against a reference written here from the rule (split the segment at the field,
// repetition and component separators, pad what is missing, replace the piece with the
// escaped value, join): the target segment becomes exactly that text and no other segment
// changes, whether the piece existed (replaced in place) or not (built).
TEST(Hl7Property, SetChangesItsPieceAsSplittingAndJoiningWould) {
  std::mt19937 rng(20261205);
  auto split = [](const std::string& s, char sep) {
    std::vector<std::string> out;
    size_t b = 0;
    for (size_t e; (e = s.find(sep, b)) != std::string::npos; b = e + 1)
      out.push_back(s.substr(b, e - b));
    out.push_back(s.substr(b));
    return out;
  };
  auto join = [](const std::vector<std::string>& v, char sep) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) out += (i ? std::string(1, sep) : "") + v[i];
    return out;
  };
  const Delimiters d;  // | ^ ~ \ &
  int in_place = 0, built = 0;
  for (int round = 0; round < 300; ++round) {
    const std::string alphabet = "ab1 |^~&";
    std::string text = "MSH|^~\\&|A||||||ADT^A01|ID" + std::to_string(round);
    const char* ids[] = {"PID", "OBX", "NTE"};
    for (int k = 0; k < 4; ++k) {
      text += std::string("\r") + ids[k % 3];
      const int fields = std::uniform_int_distribution<int>(0, 6)(rng);
      for (int f = 0; f < fields; ++f) {
        text += '|';
        const int reps = std::uniform_int_distribution<int>(1, 2)(rng);
        for (int r = 0; r < reps; ++r) text += (r ? "~" : "") + random_text(rng, "xy^", 4);
      }
    }
    Message m = must_parse(text);
    for (int k = 0; k < 5; ++k) {
      const std::string id = k == 0 ? "MSH" : ids[std::uniform_int_distribution<int>(0, 2)(rng)];
      const int field = std::uniform_int_distribution<int>(3, 8)(rng);
      const int rep = std::uniform_int_distribution<int>(1, 2)(rng);
      const int comp = std::uniform_int_distribution<int>(0, 3)(rng);
      std::string path = id + "-" + std::to_string(field);
      if (rep > 1 || comp > 0) path += "(" + std::to_string(rep) + ")";
      if (comp > 0) path += "-" + std::to_string(comp);
      const std::string value = random_text(rng, alphabet, 6);
      size_t index = 0;
      while (m.segment_id(index) != id) ++index;
      std::vector<std::string> before;
      for (size_t s = 0; s < m.segment_count(); ++s) before.emplace_back(m.segment_raw(s));
      // The reference.
      auto fields = split(before[index], '|');
      const size_t fi = static_cast<size_t>(id == "MSH" ? field - 1 : field);
      const bool existed = [&] {
        if (fields.size() <= fi) return false;
        const auto reps = split(fields[fi], '~');
        if (reps.size() < static_cast<size_t>(rep)) return false;
        return comp == 0 ||
               split(reps[static_cast<size_t>(rep - 1)], '^').size() >= static_cast<size_t>(comp);
      }();
      if (fields.size() <= fi) fields.resize(fi + 1);
      auto reps = split(fields[fi], '~');
      if (reps.size() < static_cast<size_t>(rep)) reps.resize(static_cast<size_t>(rep));
      std::string& r = reps[static_cast<size_t>(rep - 1)];
      if (comp == 0) {
        r = escape(value, d);
      } else {
        auto comps = split(r, '^');
        if (comps.size() < static_cast<size_t>(comp)) comps.resize(static_cast<size_t>(comp));
        comps[static_cast<size_t>(comp - 1)] = escape(value, d);
        r = join(comps, '^');
      }
      fields[fi] = join(reps, '~');
      ASSERT_TRUE(m.set(path, value).ok()) << path;
      ASSERT_EQ(m.segment_count(), before.size());
      for (size_t s = 0; s < before.size(); ++s)
        ASSERT_EQ(m.segment_raw(s), s == index ? join(fields, '|') : before[s])
            << path << " = '" << value << "' in " << before[index];
      EXPECT_EQ(m.get(path), value) << path;
      (existed ? in_place : built) += 1;
    }
    const Message fresh = must_parse(m.text());
    ASSERT_EQ(fresh.encode(), m.encode());
  }
  EXPECT_GT(in_place, 100);
  EXPECT_GT(built, 100);
  std::printf("set: %d pieces replaced in place, %d built\n", in_place, built);
}
