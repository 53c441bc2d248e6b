// The agent's key on a PKCS#11 token (docs/security.md, "Key custody"), with SoftHSM (Debian
// softhsm2) standing in for a board's TPM or HSM: the key is made on the token and never leaves
// it, the key file holds only its URI, and enrolment, signed batches and a key rotation work
// through the real postwatch-agent, Mosquitto and the aggregator.
#include "postwatch/agent/identity_key.hpp"
#include "postwatch/agent/pkcs11_key.hpp"
#include "trust_test_support.hpp"

#include <gtest/gtest.h>

#include <p11-kit/pkcs11.h>

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace postwatch;
using namespace postwatch::test;
using postwatch::agent::IdentityConfig;
using postwatch::agent::Pkcs11Config;
using postwatch::agent::Pkcs11Keys;

namespace {

constexpr const char* kModule = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kPin = "471100";

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_secret(const fs::path& file, const std::string& text,
                  fs::perms mode = fs::perms::owner_read | fs::perms::owner_write) {
  std::ofstream(file) << text << "\n";
  fs::permissions(file, mode);
}

// A SoftHSM token of its own in `dir`, labelled "postwatch", its user PIN in a 0600 file.
// SoftHSM reads SOFTHSM2_CONF when the module is initialised: in this process and in the agents
// it starts.
struct SoftHsmToken {
  explicit SoftHsmToken(const fs::path& dir) {
    fs::create_directories(dir / "tokens");
    conf = dir / "softhsm2.conf";
    std::ofstream(conf) << "directories.tokendir = " << (dir / "tokens").string()
                        << "\nobjectstore.backend = file\nlog.level = ERROR\n";
    ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
    auto r = run_shell("softhsm2-util --init-token --free --label postwatch --pin " + std::string(kPin) +
                       " --so-pin 87654321 2>&1");
    EXPECT_EQ(r.status, 0) << r.output;
    pin_file = dir / "token.pin";
    write_secret(pin_file, kPin);
  }
  Pkcs11Config config() const { return {kModule, "postwatch", pin_file}; }
  fs::path conf, pin_file;
};

// What the token itself says of a private key's CKA_EXTRACTABLE and whether it hands out its
// CKA_VALUE: asked through the module directly, not through the code under test.
struct RawAnswer {
  bool found = false;
  CK_BBOOL extractable = CK_TRUE, sensitive = CK_FALSE;
  CK_RV value_rv = CKR_OK;
};
RawAnswer ask_token_about(const std::string& label) {
  RawAnswer out;
  void* lib = ::dlopen(kModule, RTLD_NOW | RTLD_LOCAL);
  if (!lib) return out;
  CK_FUNCTION_LIST* f = nullptr;
  reinterpret_cast<CK_C_GetFunctionList>(::dlsym(lib, "C_GetFunctionList"))(&f);
  CK_RV init = f->C_Initialize(nullptr);
  CK_SLOT_ID slots[8];
  CK_ULONG n = 8;
  CK_SESSION_HANDLE s = 0;
  if (f->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK && n > 0 &&
      f->C_OpenSession(slots[0], CKF_SERIAL_SESSION, nullptr, nullptr, &s) == CKR_OK) {
    std::string pin = kPin;
    f->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size());
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE q[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    CK_OBJECT_HANDLE h = 0;
    CK_ULONG found = 0;
    f->C_FindObjectsInit(s, q, 2);
    f->C_FindObjects(s, &h, 1, &found);
    f->C_FindObjectsFinal(s);
    if (found == 1) {
      out.found = true;
      CK_ATTRIBUTE flags[] = {{CKA_EXTRACTABLE, &out.extractable, sizeof out.extractable},
                              {CKA_SENSITIVE, &out.sensitive, sizeof out.sensitive}};
      f->C_GetAttributeValue(s, h, flags, 2);
      std::uint8_t value[64];
      CK_ATTRIBUTE v{CKA_VALUE, value, sizeof value};
      out.value_rv = f->C_GetAttributeValue(s, h, &v, 1);
    }
    f->C_CloseSession(s);
  }
  if (init == CKR_OK) f->C_Finalize(nullptr);
  ::dlclose(lib);
  return out;
}

std::string label_of(const std::string& uri) {
  auto at = uri.find("object=");
  return uri.substr(at + 7, uri.find(';', at) - at - 7);
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

class Pkcs11Key : public ::testing::Test {
 protected:
  TempDir dir;
  SoftHsmToken token{dir.path()};
};

}  // namespace

TEST_F(Pkcs11Key, IsMadeOnTheTokenSignsAndNeverLeavesIt) {
  auto key = Pkcs11Keys(token.config()).generate();
  const auto uri = key.external_reference();
  EXPECT_TRUE(uri.starts_with("pkcs11:token=postwatch;object=postwatch-agent-")) << uri;

  const std::string message = "bamako gw-1 seq 42";
  std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(message.data()), message.size());
  EXPECT_TRUE(verify_signature(key.public_key(), bytes, key.sign(bytes)));
  auto again = Pkcs11Keys(token.config()).load(uri);
  EXPECT_EQ(again.public_key(), key.public_key());
  EXPECT_TRUE(verify_signature(again.public_key(), bytes, again.sign(bytes)));

  auto raw = ask_token_about(label_of(uri));
  ASSERT_TRUE(raw.found) << uri;
  EXPECT_EQ(raw.extractable, CK_FALSE);
  EXPECT_EQ(raw.sensitive, CK_TRUE);
  EXPECT_EQ(raw.value_rv, static_cast<CK_RV>(CKR_ATTRIBUTE_SENSITIVE)) << "the token gave out the private key";
}

TEST_F(Pkcs11Key, TheKeyFileHoldsOnlyTheUriAndTheAgentLoadsTheKeyThroughIt) {
  IdentityConfig id{dir.path() / "agent.key", dir.path() / "aggregator.pub", token.config()};
  bool created = false;
  auto key = agent::load_or_create_identity_key(id, id.key_file, created);
  EXPECT_TRUE(created);
  const auto text = read_text(id.key_file);
  EXPECT_TRUE(agent::is_pkcs11_reference(text)) << text;
  EXPECT_EQ(text.find("PRIVATE KEY"), std::string::npos) << text;
  struct stat st {};
  ASSERT_EQ(::stat(id.key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(agent::load_identity_key(id, id.key_file).key_id(), key.key_id());
  auto reused = agent::load_or_create_identity_key(id, id.key_file, created);
  EXPECT_FALSE(created);
  EXPECT_EQ(reused.key_id(), key.key_id());

  // The same file without identity.pkcs11 says what is missing.
  IdentityConfig no_token{id.key_file, id.aggregator_key_file, {}};
  auto why = error_of([&] { agent::load_identity_key(no_token, id.key_file); });
  EXPECT_NE(why.find("identity.pkcs11"), std::string::npos) << why;
  EXPECT_NE(why.find(id.key_file.string()), std::string::npos) << why;
}

TEST_F(Pkcs11Key, AWrongPinAMissingModuleOrTokenOrKeyIsAClearError) {
  const auto uri = Pkcs11Keys(token.config()).generate().external_reference();

  auto wrong_pin = token.config();
  wrong_pin.pin_file = dir.path() / "wrong.pin";
  write_secret(wrong_pin.pin_file, "999999");
  auto why = error_of([&] { Pkcs11Keys(wrong_pin).load(uri); });
  EXPECT_NE(why.find("PIN is wrong"), std::string::npos) << why;
  EXPECT_NE(why.find("wrong.pin"), std::string::npos) << why;
  EXPECT_EQ(why.find("999999"), std::string::npos) << "the PIN itself must never be printed: " << why;

  auto exposed = token.config();
  exposed.pin_file = dir.path() / "exposed.pin";
  write_secret(exposed.pin_file, kPin, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  why = error_of([&] { Pkcs11Keys(exposed).load(uri); });
  EXPECT_NE(why.find("chmod 600"), std::string::npos) << why;

  auto no_module = token.config();
  no_module.module = dir.path() / "libnone.so";
  why = error_of([&] { Pkcs11Keys(no_module).load(uri); });
  EXPECT_NE(why.find("cannot load the PKCS#11 module"), std::string::npos) << why;

  auto other_token = token.config();
  other_token.token = "hsm-7";
  why = error_of([&] { Pkcs11Keys(other_token).generate(); });
  EXPECT_NE(why.find("no token labelled 'hsm-7'"), std::string::npos) << why;
  EXPECT_NE(why.find("'postwatch'"), std::string::npos) << "names the tokens there are: " << why;

  why = error_of([&] { Pkcs11Keys(token.config()).load("pkcs11:token=postwatch;object=postwatch-agent-00000000"); });
  EXPECT_NE(why.find("0 private and 0 public keys labelled postwatch-agent-00000000"), std::string::npos) << why;
  why = error_of([&] { Pkcs11Keys(token.config()).load("pkcs11:token=postwatch;object=x;type=public"); });
  EXPECT_NE(why.find("does not name a private key"), std::string::npos) << why;
}

// rotate-key lists the old key before its file is replaced; loading the key in force destroys
// what is listed, and never the key in force, even when a rotation cut short listed it.
TEST_F(Pkcs11Key, ARotationsOldKeyIsDestroyedOnceTheNewOneIsInForceAndNeverTheKeyInForce) {
  IdentityConfig id{dir.path() / "agent.key", dir.path() / "aggregator.pub", token.config()};
  auto old_key = agent::create_identity_key(id, id.key_file);
  auto next_file = dir.path() / "agent.key.next";
  auto new_key = agent::create_identity_key(id, next_file);
  agent::list_retired_key(id, old_key);
  agent::list_retired_key(id, new_key);  // as if a cut-short rotation had listed it too
  fs::rename(next_file, id.key_file);

  auto said = agent::destroy_retired_keys(id, agent::load_identity_key(id, id.key_file));
  ASSERT_EQ(said.size(), 1u);
  EXPECT_NE(said[0].find("destroyed the retired key " + old_key.external_reference()), std::string::npos) << said[0];
  EXPECT_FALSE(ask_token_about(label_of(old_key.external_reference())).found);
  EXPECT_EQ(agent::load_identity_key(id, id.key_file).key_id(), new_key.key_id());
  EXPECT_FALSE(fs::exists(agent::retired_keys_file(id)));
}

class Pkcs11Trust : public Trust {
 protected:
  SoftHsmToken token{dir.path()};
  void SetUp() override {
    Trust::SetUp();
    auto config = json::parse(read_text(config_file));
    config["identity"]["pkcs11"] = {{"module", kModule}, {"token", "postwatch"}, {"pin_file", token.pin_file.string()}};
    std::ofstream(config_file) << config.dump(2);
  }
};

TEST_F(Pkcs11Trust, AnAgentWhoseKeyIsOnATokenEnrolsSignsAndRotatesItsKey) {
  auto check = run_shell(shell_quoted((binary_dir() / "agent" / "postwatch-agent").string()) + " --check-config " +
                         shell_quoted(config_file.string()) + " 2>&1");
  EXPECT_EQ(check.status, 0) << check.output;

  auto r = enrol(token_for());
  ASSERT_EQ(r.status, 0) << r.output;
  const auto first_uri = read_text(key_file);
  ASSERT_TRUE(agent::is_pkcs11_reference(first_uri)) << first_uri;
  const IdentityConfig id{key_file, aggregator_key_file, token.config()};
  const auto first = agent::load_identity_key(id, key_file);
  auto keys = api("/api/v1/agent-keys");
  ASSERT_EQ(keys["keys"].size(), 1u) << keys.dump();
  EXPECT_EQ(keys["keys"][0]["key_id"], first.key_id());

  ASSERT_EQ(run_agent(0, 20), 0);
  auto s = stats();
  EXPECT_EQ(s["events_accepted"], 20) << s.dump();
  EXPECT_EQ(s["batches_signed"], s["batches_accepted"]) << s.dump();
  EXPECT_GE(s["batches_signed"].get<int>(), 1);

  auto rotated = rotate_key();
  ASSERT_EQ(rotated.status, 0) << rotated.output;
  const auto second = agent::load_identity_key(id, key_file);
  EXPECT_NE(second.key_id(), first.key_id());
  EXPECT_TRUE(fs::exists(agent::retired_keys_file(id)));

  // The next start signs with the new key and destroys the old one on the token.
  ASSERT_EQ(run_agent(20, 20), 0);
  s = stats();
  EXPECT_EQ(s["events_accepted"], 40) << s.dump();
  EXPECT_EQ(s["batches_signed"], s["batches_accepted"]) << s.dump();
  auto agent_row = api(std::string("/api/v1/agents/") + kPost + "/" + kAgent);
  EXPECT_EQ(agent_row["key_id"], second.key_id()) << agent_row.dump();
  EXPECT_FALSE(ask_token_about(label_of(first_uri)).found) << "the retired key is still on the token";
  EXPECT_TRUE(ask_token_about(label_of(second.external_reference())).found);
  EXPECT_FALSE(fs::exists(agent::retired_keys_file(id)));
}
