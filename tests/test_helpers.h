// test_helpers.h — the thin C++ layer between GoogleTest and the C libraries:
// RAII deleters over C handles, status assertions that print the error
// message, access to ../shared (skipping cleanly when it is absent), temp
// folders and running the CLI.
#ifndef BITPARITY_TEST_HELPERS_H
#define BITPARITY_TEST_HELPERS_H

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include "bitnet/status.h"
}

// EXPECT_OK(call, err): the call returned BN_OK; otherwise print err.msg.
#define EXPECT_OK(status, err) EXPECT_EQ((status), BN_OK) << bn_status_name(status) << ": " << (err).msg
#define ASSERT_OK(status, err) ASSERT_EQ((status), BN_OK) << bn_status_name(status) << ": " << (err).msg

namespace bptest {

// unique_ptr deleter calling a C destructor: Handle<bn_gguf, bn_gguf_close>.
template <auto Fn>
struct CDeleter {
    template <class T>
    void operator()(T *p) const {
        if (p) Fn(p);
    }
};
template <class T, auto Fn>
using Handle = std::unique_ptr<T, CDeleter<Fn>>;

// Absolute path of a file under ../shared, or "" when shared/ is absent.
std::string SharedPath(const std::string &rel);
std::string SourcePath(const std::string &rel);  // file in the source tree
std::string BinaryPath();                        // the bitparity executable

// A fresh empty directory removed (recursively) on destruction.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    const std::string &path() const { return path_; }
    std::string file(const std::string &name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

std::vector<uint8_t> ReadFile(const std::string &path);
void WriteFile(const std::string &path, const void *data, size_t size);
inline void WriteFile(const std::string &path, const std::vector<uint8_t> &v) {
    WriteFile(path, v.data(), v.size());
}

struct RunResult {
    int exit_code;        // -1 when killed by a signal
    std::string out, err; // captured stdout / stderr
};
// Runs `bitparity <args>` through /bin/sh (args are shell words).
RunResult RunCli(const std::string &args);
RunResult RunShell(const std::string &cmd);

}  // namespace bptest

// Skips the current test when ../shared (or the file) is missing.
#define REQUIRE_SHARED(var, rel)                                                   \
    std::string var = ::bptest::SharedPath(rel);                                   \
    if (var.empty()) GTEST_SKIP() << "../shared/" << (rel) << " absent: skipped"

#endif
