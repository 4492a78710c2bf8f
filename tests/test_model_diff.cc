// test_model_diff.cc — parity/model_diff.h on hand-made files: the
// relations the CLI test (tests/cli/lint_diff.sh, on the fixture models) does
// not reach — a transpose with the shape swapped, another type with equal
// values, element counts that differ — the metadata diff of scalars and
// arrays, and the activation part skipped when the engine cannot bind.
#include "test_helpers.h"

extern "C" {
#include "bitnet/gguf.h"
#include "bitnet/quant.h"
#include "parity/model_diff.h"
}

#include <cstring>
#include <string>
#include <vector>

using bptest::TempDir;

namespace {

struct F32Tensor {
    std::string name;
    uint32_t type; // F32 or F16
    int64_t ne0, ne1;
    std::vector<float> v;
};

void Write(const std::string &path, const std::vector<std::pair<std::string, uint32_t>> &u32_keys,
           const std::vector<uint32_t> &arr, const std::vector<F32Tensor> &tensors) {
    bn_gguf_writer *w;
    bn_error err;
    ASSERT_EQ(bn_gguf_writer_open(path.c_str(), 3, &w, &err), BN_OK) << err.msg;
    for (const auto &k : u32_keys) ASSERT_EQ(bn_gguf_writer_add_u32(w, k.first.c_str(), k.second, &err), BN_OK);
    ASSERT_EQ(bn_gguf_writer_add_arr(w, "test.array", BN_GGUF_UINT32, arr.data(), arr.size(), &err), BN_OK);
    for (const auto &t : tensors) {
        const int64_t ne[2] = {t.ne0, t.ne1};
        ASSERT_EQ(bn_gguf_writer_add_tensor(w, t.name.c_str(), t.type, 2, ne, &err), BN_OK) << err.msg;
    }
    for (const auto &t : tensors) {
        std::vector<uint8_t> bytes(t.v.size() * (t.type == BN_TYPE_F32 ? 4 : 2));
        ASSERT_EQ(bn_quantize(t.type, t.v.data(), t.ne0, t.ne1, bytes.data(), bytes.size(), &err), BN_OK) << err.msg;
        ASSERT_EQ(bn_gguf_writer_write_tensor(w, bytes.data(), bytes.size(), &err), BN_OK) << err.msg;
    }
    ASSERT_EQ(bn_gguf_writer_close(w, &err), BN_OK) << err.msg;
}

std::vector<float> Ramp(size_t n, float step) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = step * (float)((i * 7) % 13) - 1.0f;
    return v;
}

const parity_tensor_diff *Find(const parity_model_diff *d, const char *name) {
    for (size_t i = 0; i < d->n_tensors; i++)
        if (!strcmp(d->tensors[i].name, name)) return &d->tensors[i];
    return nullptr;
}

TEST(ModelDiff, RelationsMetadataAndSkippedActivations) {
    TempDir dir;
    const std::vector<float> a = Ramp(8 * 4, 0.25f), b = Ramp(6 * 2, 0.5f), c = Ramp(4 * 4, 0.125f);
    std::vector<float> at(a.size()); // a [4 rows, 8 cols] transposed: [8 rows, 4 cols]
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 8; k++) at[k * 4 + r] = a[r * 8 + k];
    std::vector<float> c25(c);
    for (float &x : c25) x *= 2.5f;
    Write(dir.file("old.gguf"), {{"test.kept", 1}, {"test.changed", 2}, {"test.removed", 3}}, {1, 2, 3},
          {{"a.weight", BN_TYPE_F32, 8, 4, a}, {"b.weight", BN_TYPE_F32, 6, 2, b}, {"c.weight", BN_TYPE_F32, 4, 4, c},
           {"same.weight", BN_TYPE_F32, 4, 4, c}, {"gone.weight", BN_TYPE_F32, 4, 1, {1, 2, 3, 4}},
           {"small.weight", BN_TYPE_F32, 4, 2, Ramp(8, 0.25f)}});
    Write(dir.file("new.gguf"), {{"test.kept", 1}, {"test.changed", 5}, {"test.added", 4}}, {1, 2, 4},
          {{"a.weight", BN_TYPE_F32, 4, 8, at}, {"b.weight", BN_TYPE_F16, 6, 2, b}, {"c.weight", BN_TYPE_F32, 4, 4, c25},
           {"same.weight", BN_TYPE_F32, 4, 4, c}, {"small.weight", BN_TYPE_F32, 4, 3, Ramp(12, 0.25f)},
           {"new.weight", BN_TYPE_F32, 4, 1, {1, 2, 3, 4}}});
    const std::string o = dir.file("old.gguf"), n = dir.file("new.gguf");
    const int32_t tokens[2] = {1, 2};
    parity_model_diff_opts opts = {o.c_str(), n.c_str(), tokens, 2, nullptr, 1, nullptr};
    parity_model_diff *d = nullptr;
    bn_error err;
    ASSERT_EQ(parity_model_diff_run(&opts, &d, &err), BN_OK) << err.msg;

    // metadata: one changed scalar, one removed, one added, an array of the same count with other content
    ASSERT_EQ(d->n_kv, 4u);
    EXPECT_STREQ(d->kv[0].key, "test.changed");
    EXPECT_STREQ(d->kv[0].old_value, "2");
    EXPECT_STREQ(d->kv[0].new_value, "5");
    EXPECT_STREQ(d->kv[1].key, "test.removed");
    EXPECT_EQ(d->kv[1].change, PARITY_DIFF_REMOVED);
    EXPECT_STREQ(d->kv[2].key, "test.array");
    EXPECT_STREQ(d->kv[2].new_value, "[UINT32 x 3] (other content)");
    EXPECT_STREQ(d->kv[3].key, "test.added");
    EXPECT_EQ(d->kv[3].change, PARITY_DIFF_ADDED);

    EXPECT_EQ(d->n_tensor[0], 6);
    EXPECT_EQ(d->n_tensor[1], 6);
    EXPECT_EQ(d->n_identical, 1); // same.weight
    const parity_tensor_diff *t;
    ASSERT_NE(t = Find(d, "a.weight"), nullptr);
    EXPECT_EQ(t->relation, PARITY_REL_TRANSPOSED) << t->detail; // shape swapped, OLD^T's values
    ASSERT_NE(t = Find(d, "b.weight"), nullptr);
    EXPECT_EQ(t->relation, PARITY_REL_EQUAL) << t->detail; // multiples of 0.5 in [-1, 5]: exact in F16
    EXPECT_EQ(t->type[1], (uint32_t)BN_TYPE_F16);
    ASSERT_NE(t = Find(d, "c.weight"), nullptr);
    EXPECT_EQ(t->relation, PARITY_REL_SCALED);
    EXPECT_DOUBLE_EQ(t->factor, 2.5);
    EXPECT_DOUBLE_EQ(t->m.scale, 2.5);
    ASSERT_NE(t = Find(d, "small.weight"), nullptr);
    EXPECT_EQ(t->relation, PARITY_REL_INCOMPARABLE);
    EXPECT_STREQ(t->detail, "8 elements in OLD, 12 in NEW");
    ASSERT_NE(t = Find(d, "gone.weight"), nullptr);
    EXPECT_EQ(t->change, PARITY_DIFF_REMOVED);
    ASSERT_NE(t = Find(d, "new.weight"), nullptr);
    EXPECT_EQ(t->change, PARITY_DIFF_ADDED);
    EXPECT_EQ(d->n_tensors, 6u);

    // no architecture: the engine binds neither, the activations are skipped and say why
    EXPECT_FALSE(d->act_ran);
    EXPECT_NE(std::string(d->act_skipped).find("the engine cannot bind OLD: "), std::string::npos) << d->act_skipped;
    EXPECT_NE(std::string(d->act_skipped).find("general.architecture"), std::string::npos) << d->act_skipped;
    EXPECT_FALSE(d->equivalent);
    parity_model_diff_free(d);

    // a file with itself: nothing differs, equivalent although the activations cannot run
    opts.new_path = o.c_str();
    ASSERT_EQ(parity_model_diff_run(&opts, &d, &err), BN_OK) << err.msg;
    EXPECT_EQ(d->n_kv + d->n_tensors, 0u);
    EXPECT_TRUE(d->equivalent) << d->verdict;
    parity_model_diff_free(d);

    // an unreadable file is an input error naming it
    opts.new_path = "/nonexistent/x.gguf";
    EXPECT_EQ(parity_model_diff_run(&opts, &d, &err), BN_ERR_IO);
    EXPECT_EQ(d, nullptr);
    EXPECT_NE(std::string(err.msg).find("/nonexistent/x.gguf"), std::string::npos) << err.msg;
}

}  // namespace
