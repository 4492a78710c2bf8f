// test_helpers.h — the thin C++ layer between GoogleTest and the C libraries:
// RAII deleters over C handles, status assertions that print the error
// message, access to ../shared (skipping cleanly when it is absent), temp
// folders and running the CLI.
#ifndef BITPARITY_TEST_HELPERS_H
#define BITPARITY_TEST_HELPERS_H

#include <gtest/gtest.h>

#include <ostream>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include "bitnet/forward.h"
#include "bitnet/gguf.h"
#include "bitnet/model.h"
#include "bitnet/npz.h"
#include "bitnet/status.h"
#include "bitnet/taps.h"
#include "bitnet/threads.h"
#include "bitnet/tokenizer.h"
#include "parity/compare.h"
#include "parity/hints.h"
#include "parity/replay.h"
#include "bitnet/npz.h"
#include "parity/policy.h"
#include "parity/receipt.h"
#include "reports/report.h"
#include "parity/tapmap.h"
#include "parity/trace.h"
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

// Owning handles of the libraries' objects.
using GgufPtr = Handle<bn_gguf, bn_gguf_close>;
using ModelPtr = Handle<bn_model, bn_model_free>;
using CtxPtr = Handle<bn_ctx, bn_ctx_free>;
using TapSetPtr = Handle<bn_tap_set, bn_tap_set_free>;
using TokenizerPtr = Handle<bn_tokenizer, bn_tokenizer_free>;
using PoolPtr = Handle<bn_pool, bn_pool_destroy>;
using TracePtr = Handle<parity_trace, parity_trace_close>;
using MapPtr = Handle<parity_tapmap, parity_tapmap_free>;
using ViewPtr = Handle<parity_tapview, parity_tapview_free>;
using PolicyPtr = Handle<parity_policy, parity_policy_free>;
using ResultPtr = Handle<parity_compare_result, parity_compare_result_free>;
using ReplayPtr = Handle<parity_replay_result, parity_replay_result_free>;
using ReceiptPtr = Handle<parity_receipt, parity_receipt_free>;
using ReportPtr = Handle<report_receipt, report_receipt_free>;
using NpzPtr = Handle<npz_reader, npz_close>;

// Absolute path of a file under ../shared, or "" when shared/ is absent.
std::string SharedPath(const std::string &rel);
std::string SourcePath(const std::string &rel);  // file in the source tree
std::string BinaryPath();                        // the bitparity executable

// A model a suite runs on: one of ../shared/models (skipped when absent) or
// one of fixtures/models (always there), with the prompt that goes with it,
// so that a test written once also covers a clean checkout.
struct ModelCase {
    const char *label;            // test-name suffix: "shared_i2s", "fixture_b158_i2s"
    bool shared;                  // ../shared/models/<file>, else fixtures/models/<file>
    const char *file;
    std::vector<int32_t> prompt;  // token ids (no BOS added)
};
void PrintTo(const ModelCase &c, std::ostream *os);
// Absolute path of the case's model, or "" when it is a shared one and
// ../shared is absent.
std::string ModelCasePath(const ModelCase &c);
// A prompt of fixtures/prompts.txt ("p1", "p2"); empty when it is not there.
std::vector<int32_t> FixturePrompt(const std::string &name);
// The cases most suites use: the shared tiny I2_S model with its bitnet.cpp
// prompt, and its fixture twin (2 blocks, H 256, 8/4 heads, I2_S) with p1.
ModelCase SharedTinyI2s();
ModelCase FixtureB158I2s();

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

// The handles are used by every suite: visible without qualification.
using bptest::GgufPtr;
using bptest::ModelPtr;
using bptest::CtxPtr;
using bptest::TapSetPtr;
using bptest::TokenizerPtr;
using bptest::PoolPtr;
using bptest::TracePtr;
using bptest::MapPtr;
using bptest::ViewPtr;
using bptest::PolicyPtr;
using bptest::ResultPtr;
using bptest::ReplayPtr;
using bptest::ReceiptPtr;
using bptest::ReportPtr;
using bptest::NpzPtr;

// Skips the current test when ../shared (or the file) is missing.
#define REQUIRE_SHARED(var, rel)                                                   \
    std::string var = ::bptest::SharedPath(rel);                                   \
    if (var.empty()) GTEST_SKIP() << "../shared/" << (rel) << " absent: skipped"

// Resolves a ModelCase's path into `var`, skipping the test when it is a
// shared model and ../shared is absent.
#define REQUIRE_MODEL(var, mc)                                                     \
    std::string var = ::bptest::ModelCasePath(mc);                                 \
    if (var.empty()) GTEST_SKIP() << "../shared/models/" << (mc).file << " absent: skipped"

namespace bptest {
// gtest name of a ModelCase parameter.
struct ModelCaseName {
    std::string operator()(const ::testing::TestParamInfo<ModelCase> &info) const { return info.param.label; }
};
}  // namespace bptest

#endif
