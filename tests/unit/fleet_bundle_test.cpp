// Fleet bundles (postwatch/fleet_bundle.hpp, docs/fleet.md): the signed envelope, each refusal,
// the document's fields, targets and their topics, the fleet's public key file.
#include "postwatch/fleet_bundle.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>

using namespace postwatch;
using Scope = BundleTarget::Scope;

namespace {

SigningKey fleet_key() {
  std::array<std::uint8_t, 32> seed{};
  seed.fill(7);
  return SigningKey::from_seed(seed);
}

SigningKey other_key() {
  std::array<std::uint8_t, 32> seed{};
  seed.fill(9);
  return SigningKey::from_seed(seed);
}

FleetBundle sample_bundle() {
  FleetBundle b;
  b.version = 42;
  b.issued_at_ms = 1790000000123;
  b.target = {Scope::Agent, "", "bamako", "board-1"};
  b.config = R"({"heartbeat_interval_s":30,"spool":{"max_mb":64}})";
  b.catalogue = R"({"catalogue_version":3,"indicators":[]})";
  b.health_deadline_s = 300;
  b.note = "raise the heartbeat for the summit";
  return b;
}

// An envelope around `document` exactly as written, signed by `key` the way sign_bundle signs:
// for documents sign_bundle would refuse to write.
std::string hand_signed(const std::string& document, const SigningKey& key) {
  const std::string message = "postwatch-bundle/1\n" + document;
  const auto sig = key.sign({reinterpret_cast<const std::uint8_t*>(message.data()), message.size()});
  return nlohmann::json{
      {"format", "postwatch-bundle/1"}, {"document", document}, {"key_id", key.key_id()}, {"signature", to_hex(sig)}}
      .dump();
}

std::string edited(const std::string& signed_text, const std::function<void(nlohmann::json&)>& edit) {
  auto j = nlohmann::json::parse(signed_text);
  edit(j);
  return j.dump();
}

void write_file(const std::filesystem::path& file, const std::string& text) { std::ofstream(file) << text; }

}  // namespace

TEST(FleetBundle, ASignedBundleOpensWithTheSameFields) {
  const auto key = fleet_key();
  const auto original = sample_bundle();
  const auto opened = open_bundle(sign_bundle(original, key), {other_key().public_key(), key.public_key()});
  ASSERT_TRUE(opened.ok()) << opened.error;
  EXPECT_EQ(opened.refusal, BundleRefusal::None);
  EXPECT_EQ(opened.error, "");
  EXPECT_EQ(opened.key_id, key.key_id());
  const auto& b = opened.bundle;
  EXPECT_EQ(b.version, original.version);
  EXPECT_EQ(b.issued_at_ms, original.issued_at_ms);
  EXPECT_EQ(b.target.scope, Scope::Agent);
  EXPECT_EQ(b.target.region, "");
  EXPECT_EQ(b.target.post, "bamako");
  EXPECT_EQ(b.target.agent, "board-1");
  EXPECT_EQ(b.config, original.config);
  EXPECT_EQ(b.catalogue, original.catalogue);
  EXPECT_EQ(b.health_deadline_s, original.health_deadline_s);
  EXPECT_EQ(b.note, original.note);
}

TEST(FleetBundle, EachScopeRoundTripsAndOnlyWhatIsGivenIsWritten) {
  const auto key = fleet_key();
  for (const BundleTarget& target :
       {BundleTarget{Scope::Fleet, "", "", ""}, BundleTarget{Scope::Region, "africa", "", ""},
        BundleTarget{Scope::Post, "", "kabul", ""}}) {
    FleetBundle b;
    b.version = 1;
    b.target = target;
    b.config = R"({"heartbeat_interval_s":60})";
    const auto opened = open_bundle(sign_bundle(b, key), {key.public_key()});
    ASSERT_TRUE(opened.ok()) << target.describe() << ": " << opened.error;
    EXPECT_EQ(opened.bundle.target.scope, target.scope);
    EXPECT_EQ(opened.bundle.target.region, target.region);
    EXPECT_EQ(opened.bundle.target.post, target.post);
    EXPECT_EQ(opened.bundle.target.agent, target.agent);
    EXPECT_EQ(opened.bundle.catalogue, "") << "no catalogue: the agent keeps its own";
    EXPECT_EQ(opened.bundle.health_deadline_s, 120u);
  }
  FleetBundle b;
  b.version = 3;
  b.target = {Scope::Region, "africa", "", ""};
  b.catalogue = R"({"indicators":[]})";
  // Members sorted (one JSON type in the agent); no config, no note.
  EXPECT_EQ(bundle_document(b), R"({"catalogue":{"indicators":[]},"health_deadline_s":120,"issued_at_ms":0,)"
                                R"("target":{"region":"africa","scope":"region"},"version":3})");
}

TEST(FleetBundle, TheEnvelopeNamesItsFormatAndKeyAndSignsTheFormatLineAndTheDocument) {
  const auto key = fleet_key();
  const auto b = sample_bundle();
  const auto envelope = nlohmann::json::parse(sign_bundle(b, key));
  EXPECT_EQ(envelope.size(), 4u);
  EXPECT_EQ(envelope["format"], "postwatch-bundle/1");
  EXPECT_EQ(envelope["document"], bundle_document(b));
  EXPECT_EQ(envelope["key_id"], key.key_id());
  EXPECT_EQ(envelope["signature"].get<std::string>().size(), 128u);
  const std::string message = "postwatch-bundle/1\n" + bundle_document(b);
  Signature sig{};
  ASSERT_TRUE(from_hex(envelope["signature"].get<std::string>(), sig));
  EXPECT_TRUE(
      verify_signature(key.public_key(), {reinterpret_cast<const std::uint8_t*>(message.data()), message.size()}, sig));
}

TEST(FleetBundle, AFlippedByteInTheDocumentFailsTheSignature) {
  const auto key = fleet_key();
  const auto text = sign_bundle(sample_bundle(), key);
  const auto flipped = edited(text, [](nlohmann::json& j) {
    auto doc = j["document"].get<std::string>();
    auto at = doc.find("\"version\":42");
    ASSERT_NE(at, std::string::npos);
    doc[at + 10] = '5';  // version 52
    j["document"] = doc;
  });
  const auto opened = open_bundle(flipped, {key.public_key()});
  EXPECT_EQ(opened.refusal, BundleRefusal::BadSignature) << opened.error;
  EXPECT_NE(opened.error.find("does not match"), std::string::npos) << opened.error;
  EXPECT_EQ(opened.bundle.version, 0u) << "nothing of a refused bundle is handed out";
}

TEST(FleetBundle, ASignatureThatIsNotHexOrOverTheDocumentWithoutItsFormatLineIsBad) {
  const auto key = fleet_key();
  const auto text = sign_bundle(sample_bundle(), key);
  const auto short_sig =
      edited(text, [](nlohmann::json& j) { j["signature"] = j["signature"].get<std::string>().substr(2); });
  auto opened = open_bundle(short_sig, {key.public_key()});
  EXPECT_EQ(opened.refusal, BundleRefusal::BadSignature);
  EXPECT_NE(opened.error.find("128 hex"), std::string::npos) << opened.error;

  const auto document = bundle_document(sample_bundle());
  const auto bare = key.sign({reinterpret_cast<const std::uint8_t*>(document.data()), document.size()});
  const auto unframed = edited(text, [&](nlohmann::json& j) { j["signature"] = to_hex(bare); });
  opened = open_bundle(unframed, {key.public_key()});
  EXPECT_EQ(opened.refusal, BundleRefusal::BadSignature) << opened.error;
}

TEST(FleetBundle, AnEnvelopeWithoutASignatureIsUnsigned) {
  const auto key = fleet_key();
  const auto text = sign_bundle(sample_bundle(), key);
  for (const auto& unsigned_text :
       {edited(text, [](nlohmann::json& j) { j.erase("signature"); }),
        edited(text, [](nlohmann::json& j) { j["signature"] = ""; }), edited(text, [](nlohmann::json& j) {
          j.erase("signature");
          j.erase("key_id");
        })}) {
    const auto opened = open_bundle(unsigned_text, {key.public_key()});
    EXPECT_EQ(opened.refusal, BundleRefusal::Unsigned) << opened.error;
    EXPECT_FALSE(opened.ok());
  }
}

TEST(FleetBundle, ABundleSignedByAKeyNotHeldIsUnknownKeyNamingBoth) {
  const auto key = fleet_key(), other = other_key();
  const auto opened = open_bundle(sign_bundle(sample_bundle(), other), {key.public_key()});
  EXPECT_EQ(opened.refusal, BundleRefusal::UnknownKey);
  EXPECT_NE(opened.error.find(other.key_id()), std::string::npos) << opened.error;
  EXPECT_NE(opened.error.find(key.key_id()), std::string::npos) << opened.error;
  EXPECT_EQ(opened.error.find(to_hex(other.public_key())), std::string::npos) << "no key material";

  EXPECT_EQ(open_bundle(sign_bundle(sample_bundle(), key), {}).refusal, BundleRefusal::UnknownKey);
}

TEST(FleetBundle, AnOversizedBundleIsMalformedBeforeItIsRead) {
  const std::string huge(kMaxBundleBytes + 1, ' ');
  const auto opened = open_bundle(huge, {fleet_key().public_key()});
  EXPECT_EQ(opened.refusal, BundleRefusal::Malformed);
  EXPECT_NE(opened.error.find(std::to_string(kMaxBundleBytes + 1)), std::string::npos) << opened.error;
  EXPECT_NE(opened.error.find(std::to_string(kMaxBundleBytes)), std::string::npos) << opened.error;
}

TEST(FleetBundle, AnEnvelopeOfAnotherFormatOrNotAnEnvelopeIsMalformed) {
  const auto key = fleet_key();
  const auto text = sign_bundle(sample_bundle(), key);
  struct Case {
    std::string text, says;
  };
  const std::vector<Case> cases = {
      {edited(text, [](nlohmann::json& j) { j["format"] = "postwatch-bundle/2"; }), "'postwatch-bundle/2'"},
      {edited(text, [](nlohmann::json& j) { j.erase("format"); }), "no format"},
      {edited(text, [](nlohmann::json& j) { j["format"] = 1; }), "format must be"},
      {edited(text, [](nlohmann::json& j) { j["document"] = nlohmann::json::parse(j["document"].get<std::string>()); }),
       "document must be a string"},
      {edited(text, [](nlohmann::json& j) { j["signed_by"] = "me"; }), "unknown field 'signed_by'"},
      {edited(text, [](nlohmann::json& j) { j.erase("key_id"); }), "key_id"},
      {"not json", "envelope is not JSON"},
      {"[1, 2]", "not a JSON object"},
      {std::string(100, '[') + std::string(100, ']'), "deeper than"},
  };
  for (const auto& c : cases) {
    const auto opened = open_bundle(c.text, {key.public_key()});
    EXPECT_EQ(opened.refusal, BundleRefusal::Malformed) << c.says << ": " << opened.error;
    EXPECT_NE(opened.error.find(c.says), std::string::npos) << opened.error;
    EXPECT_EQ(opened.error.find('\n'), std::string::npos) << "one line: " << opened.error;
  }
}

// Each document is signed correctly, so the signature passes and the parse is what refuses.
TEST(FleetBundle, ASignedDocumentWithABadFieldIsMalformedNamingTheField) {
  const auto key = fleet_key();
  const std::string target = R"("target":{"scope":"fleet"})";
  const std::string rest = R"("config":{"heartbeat_interval_s":30},"health_deadline_s":120)";
  struct Case {
    std::string document, says;
  };
  const std::vector<Case> cases = {
      {R"({"version":2,"issued_at_ms":1,)" + target + "," + rest + R"(,"catalog":{}})", "unknown field 'catalog'"},
      {R"({"version":2,"issued_at_ms":1,"target":{"scope":"continent"},)" + rest + "}",
       "target.scope must be fleet, region, post or agent"},
      {R"({"version":0,"issued_at_ms":1,)" + target + "," + rest + "}", "version must be above 0"},
      {R"({"version":-1,"issued_at_ms":1,)" + target + "," + rest + "}", "version must be"},
      {R"({"version":2.5,"issued_at_ms":1,)" + target + "," + rest + "}", "version must be"},
      {R"({"issued_at_ms":1,)" + target + "," + rest + "}", "version is missing"},
      {R"({"version":2,"issued_at_ms":1,"target":{"scope":"region"},)" + rest + "}", "target.region is missing"},
      {R"({"version":2,"issued_at_ms":1,"target":{"scope":"agent","post":"bamako"},)" + rest + "}",
       "target.agent is missing"},
      {R"({"version":2,"issued_at_ms":1,"target":{"scope":"post","post":"bam/ako"},)" + rest + "}",
       "target.post 'bam/ako' must not contain"},
      {R"({"version":2,"issued_at_ms":1,"target":{"scope":"fleet","region":"africa"},)" + rest + "}",
       "target.region is set but a fleet target has none"},
      {R"({"version":2,"issued_at_ms":1,"target":{"scope":"fleet","continent":"africa"},)" + rest + "}",
       "unknown target field 'continent'"},
      {R"({"version":2,"issued_at_ms":1,)" + target + R"(,"config":[1],"health_deadline_s":120})",
       "config must be a JSON object"},
      {R"({"version":2,"issued_at_ms":1,)" + target +
           R"(,"config":{},"catalogue":"gbvs.json","health_deadline_s":120})",
       "catalogue must be a JSON object"},
      {R"({"version":2,"issued_at_ms":1,)" + target + R"(,"health_deadline_s":120})", "neither config nor catalogue"},
      {R"({"version":2,"issued_at_ms":1,)" + target + R"(,"config":{},"health_deadline_s":5})",
       "health_deadline_s must be 10 to 86400, not 5"},
      {R"({"version":2,"issued_at_ms":1,)" + target + R"(,"config":{}})", "health_deadline_s is missing"},
      {R"({"version":2,"issued_at_ms":"soon",)" + target + "," + rest + "}", "issued_at_ms must be"},
      {R"({"version":2,"issued_at_ms":1,)" + target + "," + rest + R"(,"note":7})", "note must be a string"},
      {R"({"version":2,"issued_at_ms":1,)" + target + "," + rest, "document is not JSON"},
      {R"([1])", "document: not a JSON object"},
  };
  for (const auto& c : cases) {
    const auto opened = open_bundle(hand_signed(c.document, key), {key.public_key()});
    EXPECT_EQ(opened.refusal, BundleRefusal::Malformed) << c.document;
    EXPECT_NE(opened.error.find(c.says), std::string::npos) << c.document << "\n -> " << opened.error;
    EXPECT_EQ(opened.error.find('\n'), std::string::npos) << opened.error;
  }
  // The same frame around a good document opens: the cases above fail on their field alone.
  const auto good = open_bundle(hand_signed(R"({"version":2,"issued_at_ms":1,)" + target + "," + rest + "}", key),
                                {key.public_key()});
  EXPECT_TRUE(good.ok()) << good.error;
}

TEST(FleetBundle, SignRefusesABundleItWouldNotOpen) {
  const auto key = fleet_key();
  struct Case {
    std::function<void(FleetBundle&)> edit;
    std::string says;
  };
  const std::vector<Case> cases = {
      {[](FleetBundle& b) { b.version = 0; }, "version must be above 0"},
      {[](FleetBundle& b) { b.health_deadline_s = 9; }, "health_deadline_s must be 10 to 86400, not 9"},
      {[](FleetBundle& b) { b.health_deadline_s = 86401; }, "health_deadline_s"},
      {[](FleetBundle& b) {
         b.target = {Scope::Region, "", "", ""};
       },
       "target.region is missing"},
      {[](FleetBundle& b) {
         b.target = {Scope::Post, "", "bamako #2", ""};
       },
       "target.post"},
      {[](FleetBundle& b) {
         b.target = {Scope::Agent, "", "bamako", "board+1"};
       },
       "target.agent"},
      {[](FleetBundle& b) {
         b.target = {Scope::Post, "africa", "bamako", ""};
       },
       "target.region is set"},
      {[](FleetBundle& b) { b.config = b.catalogue = ""; }, "neither config nor catalogue"},
      {[](FleetBundle& b) { b.config = "[1]"; }, "config must be a JSON object"},
      {[](FleetBundle& b) { b.catalogue = "{"; }, "catalogue is not JSON"},
  };
  for (const auto& c : cases) {
    auto b = sample_bundle();
    c.edit(b);
    try {
      sign_bundle(b, key);
      ADD_FAILURE() << "signed; expected: " << c.says;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << e.what();
    }
  }
}

TEST(FleetBundle, RefusalsAndScopesHaveTheirNames) {
  EXPECT_EQ(to_string(BundleRefusal::None), "none");
  EXPECT_EQ(to_string(BundleRefusal::Malformed), "malformed");
  EXPECT_EQ(to_string(BundleRefusal::Unsigned), "unsigned");
  EXPECT_EQ(to_string(BundleRefusal::UnknownKey), "unknown_key");
  EXPECT_EQ(to_string(BundleRefusal::BadSignature), "bad_signature");
  EXPECT_EQ(to_string(Scope::Fleet), "fleet");
  EXPECT_EQ(to_string(Scope::Region), "region");
  EXPECT_EQ(to_string(Scope::Post), "post");
  EXPECT_EQ(to_string(Scope::Agent), "agent");
  EXPECT_EQ((BundleTarget{Scope::Fleet, "", "", ""}.describe()), "fleet");
  EXPECT_EQ((BundleTarget{Scope::Region, "africa", "", ""}.describe()), "region africa");
  EXPECT_EQ((BundleTarget{Scope::Post, "", "bamako", ""}.describe()), "post bamako");
  EXPECT_EQ((BundleTarget{Scope::Agent, "", "bamako", "board-1"}.describe()), "agent bamako/board-1");
}

TEST(BundleTarget, AddressesTheFleetItsRegionItsPostOrItself) {
  const BundleTarget fleet{Scope::Fleet, "", "", ""}, region{Scope::Region, "africa", "", ""},
      post{Scope::Post, "", "bamako", ""}, agent{Scope::Agent, "", "bamako", "board-1"};
  EXPECT_TRUE(fleet.addresses("africa", "bamako", "board-1"));
  EXPECT_TRUE(fleet.addresses("asia", "kabul", "gw-1"));

  EXPECT_TRUE(region.addresses("africa", "bamako", "board-1"));
  EXPECT_FALSE(region.addresses("asia", "kabul", "board-1"));

  EXPECT_TRUE(post.addresses("africa", "bamako", "board-2"));
  EXPECT_FALSE(post.addresses("africa", "dakar", "board-1"));

  EXPECT_TRUE(agent.addresses("africa", "bamako", "board-1"));
  EXPECT_FALSE(agent.addresses("africa", "bamako", "board-2")) << "another board of the post";
  EXPECT_FALSE(agent.addresses("africa", "dakar", "board-1")) << "a board of the same id at another post";

  EXPECT_FALSE((BundleTarget{Scope::Region, "", "", ""}.addresses("", "bamako", "board-1")))
      << "an empty region addresses nobody";
}

TEST(BundleTopic, EachScopeHasItsRetainedTopic) {
  EXPECT_EQ(bundle_topic({Scope::Fleet, "", "", ""}), "postwatch/v1/fleet/bundle/all");
  EXPECT_EQ(bundle_topic({Scope::Region, "africa", "", ""}), "postwatch/v1/fleet/bundle/region/africa");
  EXPECT_EQ(bundle_topic({Scope::Post, "", "bamako", ""}), "postwatch/v1/fleet/bundle/post/bamako");
  EXPECT_EQ(bundle_topic({Scope::Agent, "", "bamako", "board-1"}), "postwatch/v1/fleet/bundle/agent/bamako/board-1");
  EXPECT_EQ(bundle_topics_for("sub-saharan-africa", "bamako", "board-1"),
            (std::vector<std::string>{
                "postwatch/v1/fleet/bundle/all", "postwatch/v1/fleet/bundle/region/sub-saharan-africa",
                "postwatch/v1/fleet/bundle/post/bamako", "postwatch/v1/fleet/bundle/agent/bamako/board-1"}));
}

TEST(FleetKeys, AreReadOneALineWithCommentsAndBlankLines) {
  test::TempDir dir;
  const auto a = fleet_key(), b = other_key();
  const auto file = dir.path() / "fleet.pub";
  write_file(file, "# postwatch fleet key " + a.key_id() + "\n" + to_hex(a.public_key()) + "\n\n   \n" +
                       to_hex(b.public_key()) + "  # the next key, rolled in\r\n");
  const auto keys = load_fleet_keys(file.string());
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0], a.public_key());
  EXPECT_EQ(keys[1], b.public_key());
}

TEST(FleetKeys, ABadLineEmptyOrMissingFileIsAnErrorNamingWhere) {
  test::TempDir dir;
  const auto bad = dir.path() / "bad.pub", empty = dir.path() / "empty.pub";
  write_file(bad, "# fleet\n" + to_hex(fleet_key().public_key()) + "\n" + "abcd\n");
  write_file(empty, "# only a comment\n\n");
  auto error_of = [](const std::filesystem::path& file) {
    try {
      load_fleet_keys(file.string());
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(error_of(bad).find(bad.string() + ":3:"), std::string::npos) << error_of(bad);
  EXPECT_NE(error_of(empty).find(empty.string() + ": no public key"), std::string::npos) << error_of(empty);
  const auto missing = dir.path() / "missing.pub";
  EXPECT_NE(error_of(missing).find(missing.string()), std::string::npos) << error_of(missing);
  EXPECT_EQ(error_of(missing).find("no error"), std::string::npos);
}
