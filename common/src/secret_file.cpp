#include "postwatch/secret_file.hpp"

#include "postwatch/whole_file.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace postwatch {

namespace {
std::string mode_octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}
}  // namespace

std::string secret_file_exposure(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return "";
  bool group = st.st_mode & S_IRGRP, others = st.st_mode & S_IROTH;
  if (!group && !others) return "";
  return file.string() + " is readable by " +
         (group && others ? "group and others"
          : group         ? "group"
                          : "others") +
         " (mode " + mode_octal(st.st_mode) + "); a secret must be readable by its owner only: chmod 600 " +
         file.string();
}

std::string read_secret_file(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0)
    throw std::runtime_error("cannot read " + file.string() + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw std::runtime_error(file.string() + " is not a regular file");
  if (auto why = secret_file_exposure(file); !why.empty()) throw std::runtime_error(why);
  std::string error;
  auto text = read_whole_file(file, &error);
  if (!text) throw std::runtime_error("cannot read " + file.string() + ": " + error);
  std::string secret = std::move(*text);
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  if (secret.empty()) throw std::runtime_error(file.string() + " is empty");
  return secret;
}

}  // namespace postwatch
