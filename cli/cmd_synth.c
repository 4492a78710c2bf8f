/* cmd_synth.c — `bitparity synth`: write a small deterministic model. */
#include <string.h>

#include "bitnet/quant.h"
#include "bitnet/synth.h"
#include "commands.h"
#include "progress.h"

static const char synth_help[] =
    "usage: bitparity synth --shape SHAPE --type f32|bf16|i2_s|tq2_0|tq1_0 [--arch bitnet-b1.58|bitnet|llama]\n"
    "                       [--embd-type f16|f32] [--seed S] -o MODEL.gguf\n\n"
    "Writes a deterministic BitNet model (ternary x per-tensor scale projections, a 512-token\n"
    "byte-level BPE vocabulary, padded to the shape's vocabulary size) with bitparity's own GGUF\n"
    "writer and quantizers, streamed a few MiB at a time. The same options give the same bytes on\n"
    "every machine.\n\n"
    "  --shape S   tiny (512 vocab, 256 embd, 4 layers, 8 heads x 32, 2 kv heads, 512 ff)\n"
    "              tiny-mha (4 heads x 64, no GQA, n_ff 384) or bench (1024 embd, 8 layers,\n"
    "              16 heads x 64, 4 kv heads, 2816 ff: for benchmarks); the real models' shapes:\n"
    "              700m (bitnet_b1_58-large: 32002 vocab, 1536 embd, 24 layers, 16 heads x 96,\n"
    "              4096 ff; 270 MB as i2_s) or 2b4t (BitNet b1.58 2B-4T: 128256 vocab, 2560 embd,\n"
    "              30 layers, 20 heads x 128, 5 kv heads, 6912 ff; 1.18 GB as i2_s); default tiny\n"
    "  --type T    projection type; token_embd is F16 for i2_s (as bitnet.cpp), F32 otherwise\n"
    "  --embd-type E  token_embd f16 or f32 whatever the projections (f16: a TQ2_0 model with\n"
    "              the tied F16 lm_head of an I2_S one, as bench/run.sh compares engines on)\n"
    "  --arch A    bitnet-b1.58 (default), bitnet (adds hidden_activation = relu2) or llama (f32)\n"
    "  --seed S    PRNG seed >= 0 (default 1)\n"
    "  -o FILE     output path (appears only when complete; an older FILE stays otherwise)\n"
    CLI_PROGRESS_HELP;

static bool parse_type(const char *s, uint32_t *t) {
    static const struct {
        const char *name;
        uint32_t type;
    } types[] = {{"f32", BN_TYPE_F32},     {"bf16", BN_TYPE_BF16},   {"i2_s", BN_TYPE_I2_S},
                 {"tq2_0", BN_TYPE_TQ2_0}, {"tq1_0", BN_TYPE_TQ1_0}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(s, types[i].name)) return *t = types[i].type, true;
    return false;
}

static bool parse_arch(const char *s, bn_arch *a) {
    for (int i = 0; i < BN_ARCH_COUNT; i++)
        if (!strcmp(s, bn_arch_name((bn_arch)i))) return *a = (bn_arch)i, true;
    return false;
}

int cmd_synth(int argc, char **argv) {
    bn_synth_params p = {.arch = BN_ARCH_BITNET_B158, .cancel = cli_interrupt_flag()};
    const char *out = NULL, *shape = "tiny", *type = NULL, *arch = NULL, *embd = NULL;
    int64_t seed = 1;
    cli_progress prog = {0};
    const cli_opt opts[] = {CLI_STR_OPT("--shape", NULL, &shape),
                            CLI_STR_OPT("--type", NULL, &type),
                            CLI_STR_OPT("--arch", NULL, &arch),
                            CLI_STR_OPT("--embd-type", NULL, &embd),
                            CLI_INT_OPT("--seed", NULL, &seed, 0, INT64_MAX),
                            CLI_STR_OPT("-o", "--output", &out),
                            CLI_PROGRESS_OPTS(&prog),
                            {0}};
    int rc = cli_parse_options("synth", synth_help, argc, argv, opts, NULL, 0, NULL);
    if (rc >= 0 || (rc = cli_progress_start(&prog, "synth")) >= 0) return rc;
    if (!(p.shape = bn_synth_shape_find(shape)))
        return cli_usage_error("synth", "unknown shape '%s' (known: %s)", shape, bn_synth_shape_names());
    if (!type) return cli_usage_error("synth", "--type is required");
    if (!parse_type(type, &p.type))
        return cli_usage_error("synth", "--type '%s': expected f32, bf16, i2_s, tq2_0 or tq1_0", type);
    if (arch && !parse_arch(arch, &p.arch))
        return cli_usage_error("synth", "--arch '%s': expected bitnet-b1.58, bitnet-25, bitnet or llama", arch);
    if (embd && strcmp(embd, "f16") && strcmp(embd, "f32"))
        return cli_usage_error("synth", "--embd-type '%s': expected f16 or f32", embd);
    if (embd) p.embd_type_given = true, p.embd_type = strcmp(embd, "f16") ? BN_TYPE_F32 : BN_TYPE_F16;
    if (!out) return cli_usage_error("synth", "-o MODEL.gguf is required");
    p.seed = (uint64_t)seed;
    bn_error err = {0};
    p.progress = cli_progress_sink(&prog);
    bn_status st = bn_synth_write(&p, out, &err);
    cli_progress_end(&prog);
    if (st) return cli_fail("synth", &err);
    fprintf(stderr, "bitparity synth: wrote %s (%s, %s, %s, seed %llu)\n", out, p.shape->name, bn_arch_name(p.arch),
            bn_type_name(p.type), (unsigned long long)p.seed);
    return 0;
}
