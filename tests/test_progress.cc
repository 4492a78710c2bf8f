// test_progress.cc — the libraries' progress reports (bitnet/progress.h): the
// recorder tells layers of all evaluations in order and ends complete, with
// the tap bytes it wrote; the comparison tells every subject tap; synth every
// tensor and the file's bytes; and listening changes no result.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bitnet/synth.h"
#include "bitnet/quant.h"
#include "parity/driver.h"
#include "parity/record.h"
#include "test_helpers.h"

namespace {

struct Seen {
    std::vector<bn_progress> calls;
    std::vector<std::string> stages;
};

void Listen(void *user, const bn_progress *p) {
    Seen *s = static_cast<Seen *>(user);
    s->calls.push_back(*p);
    s->stages.emplace_back(p->stage);
}

// Calls of one stage: done never decreases, total fixed, the last is complete.
void ExpectMonotoneAndComplete(const Seen &s, const char *stage, const char *unit, int64_t total) {
    int64_t last = -1;
    size_t n = 0;
    for (size_t i = 0; i < s.calls.size(); i++) {
        if (s.stages[i] != stage) continue;
        const bn_progress &p = s.calls[i];
        EXPECT_STREQ(p.unit, unit);
        EXPECT_EQ(p.total, total) << stage;
        EXPECT_GE(p.done, last) << stage << " call " << i;
        last = p.done;
        n++;
    }
    ASSERT_GT(n, 0u) << "no " << stage << " report";
    EXPECT_EQ(last, total) << stage << " does not end complete";
}

TEST(Progress, RecordingReportsEveryLayerOfEveryEvaluation) {
    const std::string model = bptest::SourcePath("fixtures/models/b158-i2s.gguf");
    bptest::TempDir dir;
    bn_error err{};
    bn_model *m = nullptr;
    ASSERT_OK(bn_model_load(model.c_str(), &m, &err), err);
    const std::vector<int32_t> toks = {1, 30, 40, 50};
    Seen seen;
    parity_record_opts o{};
    o.model_path = model.c_str();
    o.tokens = toks.data();
    o.n_tokens = (int64_t)toks.size();
    o.n_decode = 2;
    o.n_threads = 1;
    const std::string with = dir.file("with.npz"), without = dir.file("without.npz");
    o.out_path = with.c_str();
    o.progress = {Listen, &seen};
    ASSERT_OK(parity_record(m, &o, &err), err);
    o.out_path = without.c_str();
    o.progress = {};
    ASSERT_OK(parity_record(m, &o, &err), err);
    const int64_t n_layer = m->hp.n_layer;
    bn_model_free(m);
    // 3 evaluations x 2 blocks: one report before each block, one at the end
    ExpectMonotoneAndComplete(seen, "recording", "layers", 3 * n_layer);
    ASSERT_EQ(seen.calls.size(), (size_t)(3 * n_layer + 1));
    for (size_t i = 0; i < seen.calls.size(); i++) EXPECT_EQ(seen.calls[i].done, (int64_t)i);
    // bytes: every tap written by the end; the embeddings (4 tokens x H floats) before the first block
    EXPECT_GE(seen.calls.front().bytes, 4u * 256u * 4u);
    EXPECT_GT(seen.calls.back().bytes, seen.calls.front().bytes);
    EXPECT_LT(seen.calls.back().bytes, (uint64_t)bptest::ReadFile(with).size());
    EXPECT_EQ(bptest::ReadFile(with), bptest::ReadFile(without)) << "listening changed the trace";
}

TEST(Progress, CheckReportsRecordingThenEveryComparedTap) {
    Seen seen;
    parity_driver_opts o{};
    const std::string model = bptest::SourcePath("fixtures/models/b158-i2s.gguf");
    const std::string ref = bptest::SourcePath("fixtures/expected/b158-i2s.p1.compat.npz");
    o.reference = ref.c_str();
    o.model = model.c_str();
    o.threads = 2;
    o.progress = {Listen, &seen};
    bn_error err{};
    parity_driver_run *r = nullptr;
    ASSERT_OK(parity_driver_run_job(&o, &r, &err), err);
    ASSERT_TRUE(r->result->pass);
    size_t subject_taps = 0; // every tap the subject recorded, compared or not
    for (size_t i = 0; i < r->result->n_taps; i++)
        subject_taps += r->result->taps[i].status != PARITY_TAP_MISSING_SUBJECT;
    parity_driver_run_free(r);
    ExpectMonotoneAndComplete(seen, "recording", "layers", 3 * 2); // the reference's 3 evaluations, 2 blocks
    ExpectMonotoneAndComplete(seen, "comparing", "taps", (int64_t)subject_taps);
    EXPECT_EQ(seen.stages.front(), "recording");
    EXPECT_EQ(seen.stages.back(), "comparing");
}

TEST(Progress, SynthReportsEveryTensorAndTheBytes) {
    bptest::TempDir dir;
    Seen seen;
    bn_synth_params p{};
    p.shape = bn_synth_shape_find("tiny");
    p.arch = BN_ARCH_BITNET_B158;
    p.type = BN_TYPE_I2_S;
    p.seed = 1;
    p.progress = {Listen, &seen};
    bn_error err{};
    const std::string with = dir.file("a.gguf"), without = dir.file("b.gguf");
    ASSERT_OK(bn_synth_write(&p, with.c_str(), &err), err);
    p.progress = {};
    ASSERT_OK(bn_synth_write(&p, without.c_str(), &err), err);
    ASSERT_FALSE(seen.calls.empty());
    const int64_t n = seen.calls.back().total;
    EXPECT_EQ(n, 2 + 11 * 4); // token_embd, output_norm, 11 per block (tiny: 4 blocks)
    ExpectMonotoneAndComplete(seen, "writing", "tensors", n);
    const std::vector<uint8_t> file = bptest::ReadFile(with);
    EXPECT_GT(seen.calls.back().bytes, file.size() * 9 / 10); // the tensor data is most of the file
    EXPECT_LT(seen.calls.back().bytes, file.size());
    EXPECT_EQ(file, bptest::ReadFile(without));
}

}  // namespace
