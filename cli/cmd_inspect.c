/* cmd_inspect.c — `bitparity inspect MODEL`: what the engine will use, the
 * tokenizer, the metadata and the tensors; --stats dequantizes every tensor;
 * --json gives the same as one document; --tensor/--dump writes one tensor
 * as .npy. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet/gguf.h"
#include "bitnet/model.h"
#include "bitnet/npz.h"
#include "bitnet/quant.h"
#include "bitnet/tokenizer.h"
#include "commands.h"

static const char inspect_help[] =
    "usage: bitparity inspect MODEL.gguf [--stats] [--json] [--tensor NAME --dump FILE.npy]\n\n"
    "Shows the architecture and hyper-parameters as the engine will use them, the tokenizer, every\n"
    "metadata key and a tensor table (name, type, shape in ggml ne order, bytes, offset in the data\n"
    "section).\n\n"
    "  --stats            per tensor after dequantization: mean, RMS, min, max, fraction of zeros,\n"
    "                     the scale(s) of I2_S/TQ tensors and the ternary histogram\n"
    "  --json             one JSON document: data_offset, metadata {key: value}, tensors [{name, type,\n"
    "                     shape, offset, absolute_offset, nbytes (, stats)}], model, tokenizer\n"
    "  --tensor NAME      with --dump FILE.npy: write that tensor dequantized to float32, numpy shape\n"
    "                     = ne reversed\n\n"
    "Norm weights are reported as stored: the 2B-4T file's attn_norm RMS of about 0.018 is what the\n"
    "model was trained with, not an error.\n";

/* ----------------------------------------------------------- stats -- */

typedef struct tensor_stats {
    double mean, rms, min, max, zero_frac;
    double neg_frac, pos_frac;        /* ternary types: fraction of -s and +s */
    bool has_scale;                   /* I2_S: one scale; TQ: per-block summary */
    double scale_min, scale_mean, scale_max;
    int64_t n_scales;
} tensor_stats;

static void block_scales(const bn_gguf_tensor *t, tensor_stats *s) {
    const bn_type_traits *tr = bn_type_traits_get(t->type);
    if (t->type == BN_TYPE_I2_S) {
        float sc;
        memcpy(&sc, (const uint8_t *)t->data + t->nelem / 4, sizeof sc);
        s->has_scale = true;
        s->scale_min = s->scale_max = s->scale_mean = sc;
        s->n_scales = 1;
        return;
    }
    if (t->type != BN_TYPE_TQ1_0 && t->type != BN_TYPE_TQ2_0 && t->type != BN_TYPE_Q8_0) return;
    /* TQ1_0/TQ2_0 keep their f16 scale at the end of each block, Q8_0 at the start. */
    const size_t at = t->type == BN_TYPE_Q8_0 ? 0 : tr->block_bytes - 2;
    const int64_t nb = t->nelem / tr->block_elems;
    double sum = 0;
    s->scale_min = DBL_MAX, s->scale_max = -DBL_MAX;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p = (const uint8_t *)t->data + (size_t)b * tr->block_bytes + at;
        const double d = bn_f16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
        sum += d;
        s->scale_min = d < s->scale_min ? d : s->scale_min;
        s->scale_max = d > s->scale_max ? d : s->scale_max;
    }
    s->has_scale = nb > 0;
    s->n_scales = nb;
    s->scale_mean = nb ? sum / (double)nb : 0;
}

static bn_status compute_stats(const bn_gguf_tensor *t, tensor_stats *s, bn_error *err) {
    memset(s, 0, sizeof *s);
    if (bn_cancel_check(cli_interrupt_flag(), err)) return err->code; /* one poll per tensor */
    const int64_t ne0 = t->ne[0], rows = t->nelem / ne0, chunk = ne0 >= 65536 ? 1 : 65536 / ne0;
    float *buf = malloc((size_t)(chunk * ne0) * sizeof *buf);
    if (!buf) return bn_error_nomem(err, (size_t)(chunk * ne0) * sizeof *buf, "--stats: rows of tensor %s", t->name);
    double sum = 0, sq = 0;
    int64_t zeros = 0, neg = 0, pos = 0;
    s->min = INFINITY, s->max = -INFINITY;
    bn_status st = BN_OK;
    for (int64_t r0 = 0; r0 < rows && !st; r0 += chunk) {
        const int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        if ((st = bn_dequantize_rows(t->type, t->data, ne0, rows, r0, nr, buf, err))) break;
        for (int64_t i = 0; i < nr * ne0; i++) {
            const double v = buf[i];
            sum += v, sq += v * v;
            s->min = v < s->min ? v : s->min;
            s->max = v > s->max ? v : s->max;
            zeros += v == 0, neg += v < 0, pos += v > 0;
        }
    }
    free(buf);
    if (st) return st;
    const double n = (double)t->nelem;
    s->mean = sum / n;
    s->rms = sqrt(sq / n);
    s->zero_frac = (double)zeros / n;
    s->neg_frac = (double)neg / n;
    s->pos_frac = (double)pos / n;
    block_scales(t, s);
    return BN_OK;
}

/* ------------------------------------------------------------ values -- */

/* Prints a JSON string literal of s[0..len). */
static void json_str(FILE *f, const char *s, size_t len) {
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void print_scalar(FILE *f, const bn_gguf *g, int64_t k, uint64_t j, bn_gguf_vtype t, bool json) {
    if (t == BN_GGUF_STRING) {
        bn_gguf_str s = bn_gguf_kv_str(g, k, j);
        if (json) json_str(f, s.ptr, s.len);
        else fprintf(f, "'%.*s'", (int)(s.len > 200 ? 200 : s.len), s.ptr);
    } else if (t == BN_GGUF_FLOAT32 || t == BN_GGUF_FLOAT64) {
        const double v = bn_gguf_kv_float(g, k, j);
        if (isfinite(v)) fprintf(f, "%.9g", v);
        else fprintf(f, json ? "null" : "%g", v);
    } else if (t == BN_GGUF_BOOL) {
        fputs(bn_gguf_kv_int(g, k, j) ? "true" : "false", f);
    } else if (t == BN_GGUF_UINT64) {
        fprintf(f, "%" PRIu64, (uint64_t)bn_gguf_kv_int(g, k, j));
    } else {
        fprintf(f, "%" PRId64, bn_gguf_kv_int(g, k, j));
    }
}

/* Text: arrays show their length and first elements; JSON: every element. */
static void print_value(FILE *f, const bn_gguf *g, int64_t k, bool json) {
    const bn_gguf_vtype t = bn_gguf_kv_type(g, k);
    if (t != BN_GGUF_ARRAY) {
        print_scalar(f, g, k, 0, t, json);
        return;
    }
    const bn_gguf_vtype et = bn_gguf_kv_elem_type(g, k);
    const uint64_t n = bn_gguf_kv_count_elems(g, k), shown = json ? n : (n < 6 ? n : 6);
    if (!json) fprintf(f, "[%s x %" PRIu64 "] ", bn_gguf_vtype_name(et), n);
    fputc('[', f);
    for (uint64_t j = 0; j < shown; j++) {
        if (j) fputs(", ", f);
        print_scalar(f, g, k, j, et, json);
    }
    if (shown < n) fputs(", ...", f);
    fputc(']', f);
}

/* ------------------------------------------------------------- output -- */

static void print_shape(FILE *f, const bn_gguf_tensor *t, bool json) {
    fputc('[', f);
    for (uint32_t d = 0; d < t->n_dims; d++) fprintf(f, d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
    fputc(']', f);
    (void)json;
}

static void text_model(FILE *f, const bn_model *m, const bn_error *merr) {
    if (!m) {
        fprintf(f, "model: not runnable by the engine: %s\n", merr->msg);
        return;
    }
    const bn_hparams *h = &m->hp;
    fprintf(f,
            "model: %s  vocab %" PRId64 "  embd %" PRId64 "  layers %" PRId64 "  ff %" PRId64 "  heads %" PRId64
            " (kv %" PRId64 ", head_dim %" PRId64 ")  ctx %" PRId64 "\n"
            "       rope %s base %g  rms eps %g  ffn %s  sub-norms %s  lm_head %s (%s)\n",
            bn_arch_name(h->arch), h->n_vocab, h->n_embd, h->n_layer, h->n_ff, h->n_head, h->n_head_kv,
            h->head_dim, h->n_ctx_train, h->rope_neox ? "neox" : "normal", h->rope_base, h->norm_eps,
            bn_act_name(h->act), h->sub_norms ? "yes" : "no", m->tied_output ? "token_embd (tied)" : "output.weight",
            bn_type_name(m->lm_head.type));
}

static void text_tokenizer(FILE *f, const bn_tokenizer *tok, const bn_error *terr) {
    if (!tok) {
        fprintf(f, "tokenizer: %s\n", terr->msg);
        return;
    }
    fprintf(f, "tokenizer: %s / %s  %d tokens  %d merges  bos %d  eos %d  eot %d  add_bos %s\n",
            (bn_tokenizer_kind(tok) == BN_VOCAB_BPE ? "gpt2" : "llama"), bn_tokenizer_pre(tok), bn_tokenizer_n_vocab(tok), bn_tokenizer_n_merges(tok),
            bn_token_bos(tok), bn_token_eos(tok), bn_token_eot(tok), bn_tokenizer_add_bos(tok) ? "true" : "false");
}

static void text_stats(FILE *f, const bn_gguf_tensor *t, const tensor_stats *s) {
    fprintf(f, "    mean %-+11.4g rms %-10.4g min %-+11.4g max %-+11.4g zeros %5.1f%%", s->mean, s->rms, s->min, s->max,
            100 * s->zero_frac);
    const bn_type_traits *tr = bn_type_traits_get(t->type);
    if (tr && tr->ternary)
        fprintf(f, "  ternary -/0/+ %.3f/%.3f/%.3f", s->neg_frac, s->zero_frac, s->pos_frac);
    if (s->has_scale && s->n_scales == 1) fprintf(f, "  scale %.9g", s->scale_min);
    else if (s->has_scale)
        fprintf(f, "  block scales %" PRId64 ": min %.4g mean %.4g max %.4g", s->n_scales, s->scale_min, s->scale_mean,
                s->scale_max);
    fputc('\n', f);
}

static bn_status print_text(FILE *f, const bn_gguf *g, const bn_model *m, const bn_error *merr,
                            const bn_tokenizer *tok, const bn_error *terr, bool stats, bn_error *err) {
    fprintf(f, "file: %s  (GGUF v%u, %" PRIu64 " bytes, %" PRId64 " keys, %" PRId64 " tensors, alignment %" PRIu64
               ", data at %" PRIu64 ")\n",
            bn_gguf_path(g), bn_gguf_version(g), bn_gguf_file_size(g), bn_gguf_kv_count(g), bn_gguf_tensor_count(g),
            bn_gguf_alignment(g), bn_gguf_data_offset(g));
    text_model(f, m, merr);
    text_tokenizer(f, tok, terr);
    fputs("metadata:\n", f);
    for (int64_t k = 0; k < bn_gguf_kv_count(g); k++) {
        fprintf(f, "  %-48s = ", bn_gguf_kv_key(g, k));
        print_value(f, g, k, false);
        fputc('\n', f);
    }
    fprintf(f, "tensors:\n  %-36s %-6s %-18s %12s %12s\n", "name", "type", "shape (ne)", "bytes", "offset");
    for (int64_t i = 0; i < bn_gguf_tensor_count(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        char shape[64];
        int n = snprintf(shape, sizeof shape, "[");
        for (uint32_t d = 0; d < t->n_dims; d++) n += snprintf(shape + n, sizeof shape - (size_t)n, d ? ", %lld" : "%lld", (long long)t->ne[d]);
        snprintf(shape + n, sizeof shape - (size_t)n, "]");
        fprintf(f, "  %-36s %-6s %-18s %12" PRIu64 " %12" PRIu64 "\n", t->name, bn_type_name(t->type), shape, t->nbytes,
                t->offset);
        if (stats) {
            tensor_stats s;
            bn_status st = compute_stats(t, &s, err);
            if (st) return st;
            text_stats(f, t, &s);
        }
    }
    return BN_OK;
}

static void json_stats(FILE *f, const tensor_stats *s) {
    fprintf(f, ", \"stats\": {\"mean\": %.17g, \"rms\": %.17g, \"min\": %.17g, \"max\": %.17g, \"zero_frac\": %.17g, "
               "\"neg_frac\": %.17g, \"pos_frac\": %.17g",
            s->mean, s->rms, s->min, s->max, s->zero_frac, s->neg_frac, s->pos_frac);
    if (s->has_scale)
        fprintf(f, ", \"scales\": {\"count\": %" PRId64 ", \"min\": %.17g, \"mean\": %.17g, \"max\": %.17g}", s->n_scales,
                s->scale_min, s->scale_mean, s->scale_max);
    fputc('}', f);
}

static bn_status print_json(FILE *f, const bn_gguf *g, const bn_model *m, const bn_tokenizer *tok, bool stats,
                            bn_error *err) {
    fprintf(f, "{\"file\": ");
    json_str(f, bn_gguf_path(g), strlen(bn_gguf_path(g)));
    fprintf(f, ", \"version\": %u, \"file_size\": %" PRIu64 ", \"alignment\": %" PRIu64 ", \"data_offset\": %" PRIu64,
            bn_gguf_version(g), bn_gguf_file_size(g), bn_gguf_alignment(g), bn_gguf_data_offset(g));
    if (m) {
        const bn_hparams *h = &m->hp;
        fprintf(f,
                ",\n \"model\": {\"arch\": \"%s\", \"n_vocab\": %" PRId64 ", \"n_embd\": %" PRId64 ", \"n_layer\": %" PRId64
                ", \"n_ff\": %" PRId64 ", \"n_head\": %" PRId64 ", \"n_head_kv\": %" PRId64 ", \"head_dim\": %" PRId64
                ", \"n_ctx_train\": %" PRId64 ", \"rope\": \"%s\", \"rope_base\": %.9g, \"norm_eps\": %.9g, "
                "\"activation\": \"%s\", \"sub_norms\": %s, \"tied_output\": %s}",
                bn_arch_name(h->arch), h->n_vocab, h->n_embd, h->n_layer, h->n_ff, h->n_head, h->n_head_kv, h->head_dim,
                h->n_ctx_train, h->rope_neox ? "neox" : "normal", h->rope_base, h->norm_eps, bn_act_name(h->act),
                h->sub_norms ? "true" : "false", m->tied_output ? "true" : "false");
    }
    if (tok)
        fprintf(f, ",\n \"tokenizer\": {\"model\": \"%s\", \"pre\": \"%s\", \"n_vocab\": %d, \"n_merges\": %d, "
                   "\"bos\": %d, \"eos\": %d, \"eot\": %d}",
                (bn_tokenizer_kind(tok) == BN_VOCAB_BPE ? "gpt2" : "llama"), bn_tokenizer_pre(tok), bn_tokenizer_n_vocab(tok), bn_tokenizer_n_merges(tok),
                bn_token_bos(tok), bn_token_eos(tok), bn_token_eot(tok));
    fputs(",\n \"metadata\": {", f);
    for (int64_t k = 0; k < bn_gguf_kv_count(g); k++) {
        fputs(k ? ",\n  " : "\n  ", f);
        json_str(f, bn_gguf_kv_key(g, k), strlen(bn_gguf_kv_key(g, k)));
        fputs(": ", f);
        print_value(f, g, k, true);
    }
    fputs("},\n \"tensors\": [", f);
    for (int64_t i = 0; i < bn_gguf_tensor_count(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
        json_str(f, t->name, strlen(t->name));
        fprintf(f, ", \"type\": \"%s\", \"shape\": ", bn_type_name(t->type));
        print_shape(f, t, true);
        fprintf(f, ", \"offset\": %" PRIu64 ", \"absolute_offset\": %" PRIu64 ", \"nbytes\": %" PRIu64, t->offset,
                t->abs_offset, t->nbytes);
        if (stats) {
            tensor_stats s;
            bn_status st = compute_stats(t, &s, err);
            if (st) return st;
            json_stats(f, &s);
        }
        fputc('}', f);
    }
    fputs("]}\n", f);
    return BN_OK;
}

static bn_status dump_tensor(const bn_gguf *g, const char *name, const char *path, bn_error *err) {
    const bn_gguf_tensor *t = bn_gguf_find_tensor(g, name);
    if (!t) return bn_error_set(err, BN_ERR_NOT_FOUND, "%s: no tensor named '%s'", bn_gguf_path(g), name);
    float *buf = malloc((size_t)t->nelem * sizeof *buf);
    if (!buf) return bn_error_nomem(err, (size_t)t->nelem * sizeof *buf, "--dump: tensor %s as float32", name);
    bn_status st = bn_dequantize_rows(t->type, t->data, t->ne[0], t->nelem / t->ne[0], 0, t->nelem / t->ne[0], buf, err);
    int64_t shape[4];
    for (uint32_t d = 0; d < t->n_dims; d++) shape[d] = t->ne[t->n_dims - 1 - d]; /* numpy: ne reversed */
    if (!st) st = npz_write_npy_file(path, NPZ_F32, shape, (int)t->n_dims, buf, cli_interrupt_flag(), err);
    free(buf);
    return st;
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL, *tensor = NULL, *dump = NULL;
    bool stats = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(inspect_help, stdout);
            return 0;
        } else if (!strcmp(a, "--stats")) stats = true;
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--tensor")) {
            if (!(tensor = cli_option_value("inspect", argc, argv, &i))) return EXIT_USAGE;
        } else if (!strcmp(a, "--dump")) {
            if (!(dump = cli_option_value("inspect", argc, argv, &i))) return EXIT_USAGE;
        } else if (a[0] == '-' && a[1]) return cli_usage_error("inspect", "unknown option '%s'", a);
        else if (path) return cli_usage_error("inspect", "one MODEL only (got '%s' and '%s')", path, a);
        else path = a;
    }
    if (!path) return cli_usage_error("inspect", "MODEL.gguf is required");
    if (!tensor != !dump) return cli_usage_error("inspect", "--tensor and --dump go together");
    bn_error err = {0};
    bn_gguf *g;
    if (bn_gguf_open(path, &g, &err)) return cli_fail("inspect", &err);
    if (tensor) {
        bn_status st = dump_tensor(g, tensor, dump, &err);
        bn_gguf_close(g);
        return st ? cli_fail("inspect", &err) : 0;
    }
    /* A file the engine cannot run is still worth inspecting: say why and go on. */
    bn_error merr = {0}, terr = {0};
    bn_model *m = NULL;
    bn_gguf *g2;
    if (bn_gguf_open(path, &g2, &merr) == BN_OK) bn_model_from_gguf(g2, &m, &merr);
    bn_tokenizer *tok = NULL;
    bn_tokenizer_load(g, &tok, &terr);
    bn_status st = json ? print_json(stdout, g, m, tok, stats, &err) : print_text(stdout, g, m, &merr, tok, &terr, stats, &err);
    bn_tokenizer_free(tok);
    bn_model_free(m);
    bn_gguf_close(g);
    return st ? cli_fail("inspect", &err) : 0;
}
