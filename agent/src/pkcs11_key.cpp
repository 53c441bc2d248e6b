#include "postwatch/agent/pkcs11_key.hpp"

#include "postwatch/secret_file.hpp"

#include <p11-kit/pkcs11.h>

#include <dlfcn.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <vector>

namespace postwatch::agent {

namespace {

constexpr std::string_view kScheme = "pkcs11:";
constexpr const char* kLabelPrefix = "postwatch-agent-";

std::string rv_text(CK_RV rv) {
  switch (rv) {
    case CKR_PIN_INCORRECT: return "the PIN is wrong (CKR_PIN_INCORRECT)";
    case CKR_PIN_LOCKED: return "the PIN is locked (CKR_PIN_LOCKED); the token's security officer must reset it";
    case CKR_PIN_EXPIRED: return "the PIN has expired (CKR_PIN_EXPIRED)";
    case CKR_TOKEN_NOT_PRESENT: return "the token is not present (CKR_TOKEN_NOT_PRESENT)";
    case CKR_DEVICE_REMOVED: return "the token was removed (CKR_DEVICE_REMOVED)";
    case CKR_DEVICE_ERROR: return "the token reports a device error (CKR_DEVICE_ERROR)";
    case CKR_MECHANISM_INVALID: return "the token cannot do Ed25519 (CKR_MECHANISM_INVALID for CKM_EDDSA)";
    case CKR_USER_NOT_LOGGED_IN: return "not logged in to the token (CKR_USER_NOT_LOGGED_IN)";
    case CKR_DEVICE_MEMORY: return "the token is full (CKR_DEVICE_MEMORY)";
    case CKR_TOKEN_WRITE_PROTECTED: return "the token is write-protected (CKR_TOKEN_WRITE_PROTECTED)";
    default: {
      char hex[32];
      std::snprintf(hex, sizeof hex, "CKR 0x%lx", static_cast<unsigned long>(rv));
      return hex;
    }
  }
}

// A PKCS#11 module, initialised once per process and path while anything uses it.
class Module {
 public:
  static std::shared_ptr<Module> open(const std::filesystem::path& path) {
    static std::mutex mu;
    static std::map<std::string, std::weak_ptr<Module>> open_modules;
    std::lock_guard lk(mu);
    if (auto m = open_modules[path.string()].lock()) return m;
    auto m = std::shared_ptr<Module>(new Module(path));
    open_modules[path.string()] = m;
    return m;
  }
  ~Module() {
    if (initialised_here_) f->C_Finalize(nullptr);
    ::dlclose(handle_);
  }
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  CK_FUNCTION_LIST* f = nullptr;
  const std::string name;

 private:
  explicit Module(const std::filesystem::path& path) : name(path.string()) {
    // Never unloaded: modules may leave threads or atexit handlers behind (and a leak checker
    // can then still name the module a leak is in).
    handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!handle_) {
      const char* why = ::dlerror();
      throw std::runtime_error("cannot load the PKCS#11 module " + name + ": " + (why ? why : "dlopen failed"));
    }
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle_, "C_GetFunctionList"));
    if (!get || get(&f) != CKR_OK || !f) {
      ::dlclose(handle_);
      throw std::runtime_error(name + " is not a PKCS#11 module (no C_GetFunctionList)");
    }
    // The agent's threads may sign and look up keys at once: let the module lock with the OS.
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    CK_RV rv = f->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      ::dlclose(handle_);
      throw std::runtime_error("the PKCS#11 module " + name + " did not initialise: " + rv_text(rv));
    }
    initialised_here_ = rv == CKR_OK;
  }
  void* handle_ = nullptr;
  bool initialised_here_ = false;
};

std::string blank_trimmed(const CK_UTF8CHAR* text, std::size_t size) {
  std::string s(reinterpret_cast<const char*>(text), size);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

// A logged-in read-write session on the token labelled `token`; one operation at a time.
class Session {
 public:
  Session(const Pkcs11Config& config, const std::string& token) : module_(Module::open(config.module)) {
    auto& f = *module_->f;
    CK_ULONG n = 0;
    check(f.C_GetSlotList(CK_TRUE, nullptr, &n), "list the slots");
    std::vector<CK_SLOT_ID> slots(n);
    if (n) check(f.C_GetSlotList(CK_TRUE, slots.data(), &n), "list the slots");
    slots.resize(n);
    std::string seen;
    std::optional<CK_SLOT_ID> slot;
    for (auto s : slots) {
      CK_TOKEN_INFO info{};
      if (f.C_GetTokenInfo(s, &info) != CKR_OK) continue;
      auto label = blank_trimmed(info.label, sizeof info.label);
      if (label == token) {
        slot = s;
        break;
      }
      seen += (seen.empty() ? "" : ", ") + ("'" + label + "'");
    }
    if (!slot)
      throw std::runtime_error("the PKCS#11 module " + module_->name + " has no token labelled '" + token + "' (" +
                               (seen.empty() ? std::string("it has no initialised token") : "it has " + seen) + ")");
    check(f.C_OpenSession(*slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &handle_),
          "open a session on token '" + token + "'");
    std::string pin;
    try {
      pin = postwatch::read_secret_file(config.pin_file);
    } catch (const std::runtime_error& e) {
      f.C_CloseSession(handle_);
      throw std::runtime_error(std::string("identity.pkcs11.pin_file: ") + e.what());
    }
    CK_RV rv = f.C_Login(handle_, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size());
    std::fill(pin.begin(), pin.end(), '\0');
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      f.C_CloseSession(handle_);
      throw std::runtime_error("cannot log in to token '" + token + "' with the PIN in " + config.pin_file.string() +
                               ": " + rv_text(rv));
    }
    token_ = token;
  }
  ~Session() { module_->f->C_CloseSession(handle_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  CK_FUNCTION_LIST& f() const { return *module_->f; }
  CK_SESSION_HANDLE handle() const { return handle_; }
  std::mutex& lock() const { return mu_; }
  const std::string& token() const { return token_; }
  void check(CK_RV rv, const std::string& what) const {
    if (rv != CKR_OK) throw std::runtime_error("PKCS#11 (" + module_->name + "): cannot " + what + ": " + rv_text(rv));
  }

  // The objects of `cls` labelled `label` (caller holds lock()).
  std::vector<CK_OBJECT_HANDLE> find(CK_OBJECT_CLASS cls, const std::string& label) const {
    CK_ATTRIBUTE query[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    check(f().C_FindObjectsInit(handle_, query, 2), "search token '" + token_ + "'");
    std::vector<CK_OBJECT_HANDLE> out(8);
    CK_ULONG n = 0;
    CK_RV rv = f().C_FindObjects(handle_, out.data(), out.size(), &n);
    f().C_FindObjectsFinal(handle_);
    check(rv, "search token '" + token_ + "'");
    out.resize(n);
    return out;
  }

 private:
  std::shared_ptr<Module> module_;
  CK_SESSION_HANDLE handle_ = 0;
  std::string token_;
  mutable std::mutex mu_;
};

// RFC 7512, the attributes this file writes: token, object, type. Percent-encoding both ways.
struct KeyUri {
  std::string token, object;
};

std::string pct_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::optional<std::string> pct_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    std::uint8_t byte = 0;
    if (i + 2 >= s.size()) return std::nullopt;
    if (!from_hex(s.substr(i + 1, 2), std::span<std::uint8_t>(&byte, 1))) return std::nullopt;
    out.push_back(static_cast<char>(byte));
    i += 2;
  }
  return out;
}

std::string uri_of(const KeyUri& k) {
  return std::string(kScheme) + "token=" + pct_encode(k.token) + ";object=" + pct_encode(k.object) + ";type=private";
}

KeyUri parse_uri(std::string_view text, const std::string& default_token) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  if (!is_pkcs11_reference(text)) throw std::runtime_error("not a PKCS#11 URI (it must begin with pkcs11:)");
  KeyUri k{default_token, {}};
  std::string_view rest = text.substr(kScheme.size());
  if (auto q = rest.find('?'); q != std::string_view::npos) rest = rest.substr(0, q);  // query: PIN hints, unused
  while (!rest.empty()) {
    auto end = rest.find(';');
    auto part = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    auto eq = part.find('=');
    if (eq == std::string_view::npos) throw std::runtime_error("PKCS#11 URI: '" + std::string(part) + "' has no '='");
    auto value = pct_decode(part.substr(eq + 1));
    if (!value) throw std::runtime_error("PKCS#11 URI: bad percent-encoding in '" + std::string(part) + "'");
    auto name = part.substr(0, eq);
    if (name == "token")
      k.token = *value;
    else if (name == "object")
      k.object = *value;
    else if (name == "type" && *value != "private")
      throw std::runtime_error("PKCS#11 URI: type=" + *value + " does not name a private key");
  }
  if (k.object.empty()) throw std::runtime_error("PKCS#11 URI names no object (object=<label>)");
  if (k.token.empty()) throw std::runtime_error("PKCS#11 URI names no token, and identity.pkcs11.token is not set");
  return k;
}

// An Ed25519 public key from CKA_EC_POINT: the DER OCTET STRING PKCS#11 3.0 asks for, or the
// 32 raw bytes some tokens give.
PublicKey public_from_ec_point(const std::vector<std::uint8_t>& point) {
  PublicKey key{};
  if (point.size() == 34 && point[0] == 0x04 && point[1] == 0x20)
    std::memcpy(key.data(), point.data() + 2, 32);
  else if (point.size() == 32)
    std::memcpy(key.data(), point.data(), 32);
  else
    throw std::runtime_error("the token's public key is not a 32-byte Ed25519 point (CKA_EC_POINT of " +
                             std::to_string(point.size()) + " bytes)");
  return key;
}

class TokenKey final : public SigningKey::External {
 public:
  TokenKey(std::shared_ptr<Session> session, CK_OBJECT_HANDLE key, std::string uri)
      : session_(std::move(session)), key_(key), uri_(std::move(uri)) {}
  Signature sign(std::span<const std::uint8_t> message) const override {
    std::lock_guard lk(session_->lock());
    CK_MECHANISM mech{CKM_EDDSA, nullptr, 0};
    session_->check(session_->f().C_SignInit(session_->handle(), &mech, key_), "start signing with " + uri_);
    Signature sig{};
    CK_ULONG len = sig.size();
    session_->check(session_->f().C_Sign(session_->handle(), const_cast<std::uint8_t*>(message.data()), message.size(),
                                         sig.data(), &len),
                    "sign with " + uri_);
    if (len != sig.size())
      throw std::runtime_error("PKCS#11: " + uri_ + " gave a signature of " + std::to_string(len) + " bytes, not 64");
    return sig;
  }
  std::string reference() const override { return uri_; }

 private:
  std::shared_ptr<Session> session_;
  CK_OBJECT_HANDLE key_;
  std::string uri_;
};

std::shared_ptr<Session> open_session(const Pkcs11Config& config, const std::string& token) {
  if (!config.enabled())
    throw std::runtime_error("the key is on a PKCS#11 token, but identity.pkcs11 (module, token, pin_file) is not set");
  return std::make_shared<Session>(config, token);
}

}  // namespace

bool is_pkcs11_reference(std::string_view text) { return text.substr(0, kScheme.size()) == kScheme; }

SigningKey Pkcs11Keys::generate() const {
  auto session = open_session(config_, config_.token);
  auto id = random_bytes(4);
  const std::string label = kLabelPrefix + to_hex(id);
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_MECHANISM mech{CKM_EC_EDWARDS_KEY_PAIR_GEN, nullptr, 0};
  // The curve by name (a DER PrintableString, as SoftHSM and OpenSC write it), else by OID
  // (RFC 8410's id-Ed25519), which other tokens want.
  const std::vector<std::vector<std::uint8_t>> curves = {
      {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'}, {0x06, 0x03, 0x2b, 0x65, 0x70}};
  CK_OBJECT_HANDLE pub = 0, priv = 0;
  CK_RV rv = CKR_GENERAL_ERROR;
  {
    std::lock_guard lk(session->lock());
    if (!session->find(CKO_PRIVATE_KEY, label).empty())
      throw std::runtime_error("token '" + config_.token + "' already has a key labelled " + label);
    for (const auto& curve : curves) {
      CK_ATTRIBUTE pub_tpl[] = {{CKA_TOKEN, &yes, sizeof yes},
                                {CKA_VERIFY, &yes, sizeof yes},
                                {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
                                {CKA_ID, id.data(), id.size()},
                                {CKA_EC_PARAMS, const_cast<std::uint8_t*>(curve.data()), curve.size()}};
      CK_ATTRIBUTE priv_tpl[] = {
          {CKA_TOKEN, &yes, sizeof yes},     {CKA_PRIVATE, &yes, sizeof yes},
          {CKA_SENSITIVE, &yes, sizeof yes}, {CKA_EXTRACTABLE, &no, sizeof no},
          {CKA_SIGN, &yes, sizeof yes},      {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
          {CKA_ID, id.data(), id.size()}};
      rv = session->f().C_GenerateKeyPair(session->handle(), &mech, pub_tpl, std::size(pub_tpl), priv_tpl,
                                          std::size(priv_tpl), &pub, &priv);
      if (rv != CKR_ATTRIBUTE_VALUE_INVALID && rv != CKR_DOMAIN_PARAMS_INVALID && rv != CKR_CURVE_NOT_SUPPORTED) break;
    }
  }
  session->check(rv, "make an Ed25519 key pair on token '" + config_.token + "'");
  return load(uri_of({config_.token, label}));
}

SigningKey Pkcs11Keys::load(std::string_view uri) const {
  const auto k = parse_uri(uri, config_.token);
  auto session = open_session(config_, k.token);
  CK_OBJECT_HANDLE priv = 0;
  std::vector<std::uint8_t> point;
  {
    std::lock_guard lk(session->lock());
    auto privs = session->find(CKO_PRIVATE_KEY, k.object);
    auto pubs = session->find(CKO_PUBLIC_KEY, k.object);
    if (privs.size() != 1 || pubs.size() != 1)
      throw std::runtime_error("token '" + k.token + "' has " + std::to_string(privs.size()) + " private and " +
                               std::to_string(pubs.size()) + " public keys labelled " + k.object +
                               " (one of each expected)");
    priv = privs.front();
    CK_KEY_TYPE type = 0;
    CK_ATTRIBUTE type_attr{CKA_KEY_TYPE, &type, sizeof type};
    session->check(session->f().C_GetAttributeValue(session->handle(), priv, &type_attr, 1),
                   "read the type of " + k.object);
    if (type != CKK_EC_EDWARDS)
      throw std::runtime_error("the key " + k.object + " on token '" + k.token + "' is not Ed25519");
    CK_ATTRIBUTE attr{CKA_EC_POINT, nullptr, 0};
    session->check(session->f().C_GetAttributeValue(session->handle(), pubs.front(), &attr, 1),
                   "read the public key " + k.object);
    point.resize(attr.ulValueLen);
    attr.pValue = point.data();
    session->check(session->f().C_GetAttributeValue(session->handle(), pubs.front(), &attr, 1),
                   "read the public key " + k.object);
    point.resize(attr.ulValueLen);
  }
  const auto public_key = public_from_ec_point(point);
  auto key = SigningKey::from_external(std::make_shared<TokenKey>(session, priv, uri_of(k)), public_key);
  // A public half that does not belong to the private one would make every batch refused.
  static constexpr std::uint8_t probe[] = "postwatch: does this token key sign what its public half verifies?";
  if (!verify_signature(public_key, probe, key.sign(probe)))
    throw std::runtime_error("the key " + k.object + " on token '" + k.token +
                             "' signs what its public half does not verify");
  return key;
}

bool Pkcs11Keys::destroy(std::string_view uri) const {
  const auto k = parse_uri(uri, config_.token);
  auto session = open_session(config_, k.token);
  std::lock_guard lk(session->lock());
  bool any = false;
  for (CK_OBJECT_CLASS cls : {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY})
    for (auto h : session->find(cls, k.object)) {
      session->check(session->f().C_DestroyObject(session->handle(), h), "destroy " + k.object);
      any = true;
    }
  return any;
}

}  // namespace postwatch::agent
