#include "postwatch/agent/identity_key.hpp"

#include "postwatch/agent/pkcs11_key.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace postwatch::agent {

namespace {

// The file's first line when it is a PKCS#11 URI, else empty (a PEM key).
std::string token_reference(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read the key " + file.string() + ": " + std::strerror(errno));
  std::string line;
  std::getline(in, line);
  return is_pkcs11_reference(line) ? line : std::string();
}

}  // namespace

SigningKey load_identity_key(const IdentityConfig& id, const std::filesystem::path& file) {
  auto uri = token_reference(file);
  if (uri.empty()) return SigningKey::load(file);
  try {
    return Pkcs11Keys(id.pkcs11).load(uri);
  } catch (const std::exception& e) {
    throw std::runtime_error(file.string() + " names a key on a PKCS#11 token: " + e.what());
  }
}

SigningKey create_identity_key(const IdentityConfig& id, const std::filesystem::path& file) {
  if (!id.pkcs11.enabled()) {
    auto key = SigningKey::generate();
    key.save(file);
    return key;
  }
  auto key = Pkcs11Keys(id.pkcs11).generate();
  try {
    key.save(file);
  } catch (...) {
    Pkcs11Keys(id.pkcs11).destroy(key.external_reference());  // no key on the token that no file names
    throw;
  }
  return key;
}

SigningKey load_or_create_identity_key(const IdentityConfig& id, const std::filesystem::path& file, bool& created) {
  created = false;
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) return load_identity_key(id, file);
  created = true;
  return create_identity_key(id, file);
}

std::filesystem::path retired_keys_file(const IdentityConfig& id) {
  auto file = id.key_file;
  file += ".retired";
  return file;
}

void list_retired_key(const IdentityConfig& id, const SigningKey& old) {
  const auto uri = old.external_reference();
  if (uri.empty()) return;
  const auto file = retired_keys_file(id);
  std::ofstream out(file, std::ios::app);
  out << uri << '\n';
  out.flush();
  if (!out) throw std::runtime_error("cannot write " + file.string() + ": " + std::strerror(errno));
}

std::vector<std::string> destroy_retired_keys(const IdentityConfig& id, const SigningKey& in_force) {
  std::vector<std::string> said;
  const auto file = retired_keys_file(id);
  std::ifstream in(file);
  if (!in) return said;
  std::vector<std::string> left;
  for (std::string uri; std::getline(in, uri);) {
    if (uri.empty() || uri == in_force.external_reference()) continue;  // a rotation that never finished
    try {
      said.push_back(Pkcs11Keys(id.pkcs11).destroy(uri)
                         ? "destroyed the retired key " + uri + " on the token"
                         : "the retired key " + uri + " was already gone from the token");
    } catch (const std::exception& e) {
      said.push_back("could not destroy the retired key " + uri + " (" + e.what() +
                     "); trying again at the next start");
      left.push_back(uri);
    }
  }
  in.close();
  std::error_code ec;
  if (left.empty()) {
    std::filesystem::remove(file, ec);
  } else {
    std::ofstream out(file, std::ios::trunc);
    for (const auto& uri : left) out << uri << '\n';
  }
  return said;
}

}  // namespace postwatch::agent
