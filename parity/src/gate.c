/* gate.c — a manifest's entries through the parity driver and the
 * perplexity scorer, one receipt each, one summary; see gate.h and
 * docs/gate.md. */
#include "parity/gate.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitnet/atomic_file.h"
#include "bitnet/sha256.h"
#include "bitnet/tokenizer.h"
#include "bitnet/yaml_doc.h"
#include "parity/doc.h"
#include "parity/driver.h"
#include "parity/perplexity.h"
#include "parity/record.h"

#include "child_process.h"


#define MANIFEST_MAX_BYTES (4u << 20)
#define SUMMARY_MAX_BYTES (64u << 20)
#define TEXT_MAX_BYTES ((size_t)1 << 30)
#define GATE_MAX_VARS 64
#define GATE_MAX_SHARDS 1024

typedef const bn_yaml_node node;

static const char *const verdict_names[PARITY_GATE_VERDICT_COUNT] = {"pass", "fail", "skipped", "error"};

const char *parity_gate_verdict_name(parity_gate_verdict v) {
    return (unsigned)v < PARITY_GATE_VERDICT_COUNT ? verdict_names[v] : "?";
}

int parity_gate_shard_of(const char *name, int count) {
    uint8_t d[BN_SHA256_DIGEST_SIZE];
    bn_sha256_buffer(name, strlen(name), d);
    uint64_t h = 0;
    for (int i = 0; i < 8; i++) h = h << 8 | d[i];
    return count > 0 ? 1 + (int)(h % (uint64_t)count) : 1;
}

int parity_gate_parse_shard(const char *s, int *index, int *count) {
    int64_t i, n;
    const char *slash = s ? strchr(s, '/') : NULL;
    if (!slash || slash == s) return 0;
    char head[32];
    if ((size_t)(slash - s) >= sizeof head) return 0;
    memcpy(head, s, (size_t)(slash - s));
    head[slash - s] = '\0';
    if (!bn_yaml_parse_int(head, 1, GATE_MAX_SHARDS, &i) || !bn_yaml_parse_int(slash + 1, 1, GATE_MAX_SHARDS, &n) ||
        i > n)
        return 0;
    *index = (int)i, *count = (int)n;
    return 1;
}

int parity_gate_exit_code(const parity_gate_summary *s) {
    return s->counts[PARITY_GATE_ERROR] ? 2 : s->counts[PARITY_GATE_FAIL] ? 1 : 0;
}

static void entry_free(parity_gate_entry *e) {
    free(e->name), free(e->model), free(e->reference), free(e->policy), free(e->message), free(e->receipt);
    free(e->detail);
}

void parity_gate_summary_free(parity_gate_summary *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) entry_free(&s->entries[i]);
    free(s->entries);
    free(s->manifest);
    free(s);
}

static char *fmt_alloc(const char *fmt, ...) BN_PRINTF(1, 2);
static char *fmt_alloc(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* dir/rel, or rel itself when absolute. */
static char *path_join(const char *dir, const char *rel) {
    return rel[0] == '/' || !dir[0] ? strdup(rel) : fmt_alloc("%s/%s", dir, rel);
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

/* mkdir -p for a folder we write into. */
static bn_status make_dirs(const char *path, bn_error *err) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return bn_error_set(err, BN_ERR_INVALID, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        const char c = *p;
        if (c != '/' && c != '\0') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return bn_error_set(err, BN_ERR_IO, "%s: cannot create the folder: %s", buf, strerror(errno));
        *p = c;
        if (!c) break;
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return bn_error_set(err, BN_ERR_IO, "%s: not a folder", path);
    return BN_OK;
}

/* ---- the manifest ---------------------------------------------------------------- */

typedef enum ref_kind { REF_TRACE, REF_PYTHON, REF_MODEL } ref_kind;

/* One entry as the manifest says it: *_w as written, the rest resolved
 * (variables expanded, relative to the manifest's folder). */
typedef struct spec {
    node *at;
    const char *name;
    parity_gate_kind kind;
    int optional;
    char *model_w, *model;
    ref_kind ref;
    char *ref_w, *ref_path; /* the trace, or the other model */
    const char *prompt;
    int32_t *tokens;
    int64_t n_tokens;
    char *tokens_from;
    int64_t decode;
    char *policy;
    const char *numerics, *kv_type, *map, *taps;
    char *text_w, *text, *base_w, *base; /* perplexity */
    int64_t ctx, bytes;
    double ppl_max, kld_mean_max, top1_min;
    int arbiter; /* arbiter: python (parity entries) */
} spec;

typedef struct manifest {
    bn_yaml_doc *doc;
    const char *path;
    char *dir;
    char sha[BN_SHA256_HEX_SIZE];
    const char *var_name[GATE_MAX_VARS], *var_value[GATE_MAX_VARS];
    size_t n_vars;
    char *owned[GATE_MAX_VARS]; /* the names --set gave */
    size_t n_owned;
    spec *specs;
    size_t n;
} manifest;

static void manifest_free(manifest *m) {
    for (size_t i = 0; i < m->n; i++) {
        spec *s = &m->specs[i];
        free(s->model_w), free(s->model), free(s->ref_w), free(s->ref_path), free(s->tokens), free(s->tokens_from);
        free(s->policy), free(s->text_w), free(s->text), free(s->base_w), free(s->base);
    }
    free(m->specs);
    free(m->dir);
    for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    bn_yaml_free(m->doc);
}

static bn_status key_fail(const manifest *m, bn_error *err, node *at, const char *key, const char *fmt, ...)
    BN_PRINTF(5, 6);
static bn_status key_fail(const manifest *m, bn_error *err, node *at, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bn_status st = bn_yaml_failv(m->doc, err, at, BN_ERR_FORMAT, BN_YAML_KEY, key, fmt, ap);
    va_end(ap);
    return st;
}

static const char *var_lookup(const manifest *m, const char *name, size_t len) {
    for (size_t i = m->n_vars; i-- > 0;) /* later (--set) wins */
        if (strlen(m->var_name[i]) == len && !strncmp(m->var_name[i], name, len)) return m->var_value[i];
    return NULL;
}

/* The scalar of `key` with ${VAR} expanded into *out (NULL when absent). */
static bn_status get_path(const manifest *m, node *e, const char *key, char **written, char **out, bn_error *err) {
    node *v = bn_yaml_get(e, key);
    *out = NULL;
    if (written) *written = NULL;
    if (!v) return BN_OK;
    const char *s = bn_yaml_str(v);
    if (!s || !*s) return key_fail(m, err, v, key, "expected a file path, got %s", s ? "an empty string" : bn_yaml_kind_name(v));
    size_t cap = strlen(s) + 1, n = 0;
    char *buf = malloc(cap);
    for (const char *p = s; buf && *p;) {
        const char *add = p;
        size_t len = 1;
        if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p, '}');
            if (!close) {
                free(buf);
                return key_fail(m, err, v, key, "'%s': unterminated ${", s);
            }
            if (!(add = var_lookup(m, p + 2, (size_t)(close - p - 2)))) {
                free(buf);
                return key_fail(m, err, v, key, "'%s': no variable '%.*s' (define it under vars: or with --set)", s,
                                (int)(close - p - 2), p + 2);
            }
            len = strlen(add);
            p = close + 1;
        } else {
            p++;
        }
        if (n + len + 1 > cap) {
            char *b = realloc(buf, cap = (n + len + 1) * 2);
            if (!b) free(buf);
            buf = b;
            if (!buf) break;
        }
        memcpy(buf + n, add, len);
        n += len;
    }
    if (!buf) return bn_error_nomem(err, cap, "%s: the path of '%s'", m->path, key);
    buf[n] = '\0';
    *out = path_join(m->dir, buf);
    free(buf);
    if (written && !(*written = strdup(s))) return bn_error_nomem(err, strlen(s), "%s: a path", m->path);
    return *out ? BN_OK : bn_error_nomem(err, n, "%s: a path", m->path);
}

static bn_status get_str(const manifest *m, node *e, const char *key, const char **out, bn_error *err) {
    node *v = bn_yaml_get(e, key);
    *out = NULL;
    if (!v) return BN_OK;
    if (!(*out = bn_yaml_str(v)) || !**out)
        return key_fail(m, err, v, key, "expected a string, got %s", *out ? "an empty one" : bn_yaml_kind_name(v));
    return BN_OK;
}

static bn_status get_int(const manifest *m, node *e, const char *key, int64_t lo, int64_t hi, int64_t *out, bn_error *err) {
    node *v = bn_yaml_get(e, key);
    if (!v) return BN_OK;
    const char *s = bn_yaml_str(v);
    if (!s || !v->plain || !bn_yaml_parse_int(s, lo, hi, out))
        return key_fail(m, err, v, key, "expected an integer %lld..%lld, got '%s'", (long long)lo, (long long)hi,
                        s ? s : bn_yaml_kind_name(v));
    return BN_OK;
}

static bn_status get_num(const manifest *m, node *e, const char *key, double *out, bn_error *err) {
    node *v = bn_yaml_get(e, key);
    *out = NAN;
    if (!v) return BN_OK;
    const char *s = bn_yaml_str(v);
    if (!s || !v->plain || !bn_yaml_parse_number(s, 0, out) || !isfinite(*out) || *out < 0)
        return key_fail(m, err, v, key, "expected a number >= 0, got '%s'", s ? s : bn_yaml_kind_name(v));
    return BN_OK;
}

static bn_status check_keys(const manifest *m, node *e, const char *const *allowed, const char *kind, bn_error *err) {
    for (size_t i = 0; i < e->n; i++) {
        const char *k = bn_yaml_str(bn_yaml_key(e, i));
        int ok = 0;
        for (size_t j = 0; k && allowed[j] && !ok; j++) ok = !strcmp(k, allowed[j]);
        if (!ok) return key_fail(m, err, bn_yaml_key(e, i), k ? k : "?", "not a key of a %s entry (docs/gate.md)", kind);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(k, bn_yaml_str(bn_yaml_key(e, j)))) return key_fail(m, err, bn_yaml_key(e, i), k, "given twice");
    }
    return BN_OK;
}

static const char *const parity_keys[] = {"name", "model", "reference", "prompt", "tokens", "tokens-from", "decode",
                                          "policy", "numerics", "kv-type", "map", "taps", "optional", "arbiter", NULL};
static const char *const ppl_keys[] = {"name", "model", "perplexity", "ctx", "bytes", "base", "ppl_max",
                                       "kld_mean_max", "top1_min", "numerics", "optional", NULL};

static bn_status read_tokens(const manifest *m, node *v, spec *s, bn_error *err) {
    if (!v) return BN_OK;
    const char *str = bn_yaml_str(v);
    size_t n = v->kind == BN_YAML_LIST ? v->n : 0;
    if (str) { /* "1,2,3" */
        n = 1;
        for (const char *p = str; *p; p++) n += *p == ',';
    } else if (v->kind != BN_YAML_LIST || !v->n) {
        return key_fail(m, err, v, "tokens", "expected a list of token ids or \"1,2,3\", got %s", bn_yaml_kind_name(v));
    }
    if (!(s->tokens = malloc(n * sizeof *s->tokens))) return bn_error_nomem(err, n * 4, "%s: tokens", m->path);
    const char *p = str;
    for (size_t i = 0; i < n; i++) {
        char buf[32];
        const char *t;
        if (str) {
            const char *end = strchr(p, ',');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), p);
            t = buf;
            p = end ? end + 1 : p + len;
        } else {
            t = bn_yaml_str(bn_yaml_item(v, i));
        }
        int64_t id;
        if (!t || !bn_yaml_parse_int(t, 0, INT32_MAX, &id))
            return key_fail(m, err, str ? v : bn_yaml_item(v, i), "tokens", "item %zu: expected a token id >= 0, got '%s'",
                            i, t ? t : "a collection");
        s->tokens[i] = (int32_t)id;
    }
    s->n_tokens = (int64_t)n;
    return BN_OK;
}

static bn_status read_parity_entry(const manifest *m, node *e, spec *s, bn_error *err) {
    bn_status st = check_keys(m, e, parity_keys, "parity", err);
    node *ref = bn_yaml_get(e, "reference");
    if (!st && !ref) st = key_fail(m, err, e, "reference", "missing: a trace, python, or {model: OTHER.gguf}");
    if (!st && ref->kind == BN_YAML_MAP) {
        if (ref->n != 1 || !bn_yaml_get(ref, "model"))
            return key_fail(m, err, ref, "reference", "a mapping here has the one key 'model' (another model to trace)");
        s->ref = REF_MODEL;
        st = get_path(m, ref, "model", &s->ref_w, &s->ref_path, err);
    } else if (!st) {
        const char *r = bn_yaml_str(ref);
        if (!r) return key_fail(m, err, ref, "reference", "expected a trace path, python or {model: ...}");
        s->ref = !strcmp(r, "python") ? REF_PYTHON : REF_TRACE;
        if (s->ref == REF_TRACE) st = get_path(m, e, "reference", &s->ref_w, &s->ref_path, err);
        else if (!(s->ref_w = strdup("python"))) st = bn_error_nomem(err, 8, "%s", m->path);
    }
    if (!st) st = get_str(m, e, "prompt", &s->prompt, err);
    if (!st) st = read_tokens(m, bn_yaml_get(e, "tokens"), s, err);
    if (!st) st = get_path(m, e, "tokens-from", NULL, &s->tokens_from, err);
    s->decode = -1;
    if (!st) st = get_int(m, e, "decode", 0, PARITY_RECORD_MAX_DECODE, &s->decode, err);
    if (!st) {
        node *pol = bn_yaml_get(e, "policy");
        const char *p = bn_yaml_str(pol);
        if (pol && (!p || !*p)) st = key_fail(m, err, pol, "policy", "expected a policy name or file");
        /* a file (a path or *.yaml) is relative to the manifest; a bare word is a built-in name */
        else if (p && (strchr(p, '/') || strstr(p, ".yaml"))) st = get_path(m, e, "policy", NULL, &s->policy, err);
        else if (p && !(s->policy = strdup(p))) st = bn_error_nomem(err, strlen(p), "%s", m->path);
    }
    node *arb = bn_yaml_get(e, "arbiter");
    if (!st && arb && !(bn_yaml_str(arb) && !strcmp(bn_yaml_str(arb), "python")))
        st = key_fail(m, err, arb, "arbiter", "expected python (the independent reference as a third opinion)");
    s->arbiter = arb != NULL;
    if (!st) st = get_str(m, e, "numerics", &s->numerics, err);
    if (!st) st = get_str(m, e, "kv-type", &s->kv_type, err);
    if (!st) st = get_str(m, e, "map", &s->map, err);
    if (!st) st = get_str(m, e, "taps", &s->taps, err);
    if (st) return st;
    const int prompts = (s->prompt != NULL) + (s->tokens != NULL) + (s->tokens_from != NULL);
    node *at = bn_yaml_get(e, "prompt") ? bn_yaml_get(e, "prompt") : bn_yaml_get(e, "tokens") ? bn_yaml_get(e, "tokens")
                                                                                                : bn_yaml_get(e, "tokens-from");
    if (s->ref == REF_TRACE && (prompts || s->decode >= 0))
        return key_fail(m, err, at ? at : bn_yaml_get(e, "decode"), at ? (s->prompt ? "prompt" : s->tokens ? "tokens" : "tokens-from") : "decode",
                        "a trace reference brings its own evaluations: no prompt, tokens, tokens-from or decode");
    if (s->ref != REF_TRACE && prompts != 1)
        return key_fail(m, err, prompts ? at : ref, prompts ? "prompt" : "reference",
                        "a %s reference needs exactly one of prompt, tokens and tokens-from",
                        s->ref == REF_PYTHON ? "python" : "model");
    if (s->tokens_from && s->decode >= 0)
        return key_fail(m, err, bn_yaml_get(e, "decode"), "decode", "tokens-from gives the steps: no decode");
    if (s->decode < 0) s->decode = 2;
    return BN_OK;
}

static bn_status read_ppl_entry(const manifest *m, node *e, spec *s, bn_error *err) {
    s->kind = PARITY_GATE_PERPLEXITY;
    s->ctx = 128;
    bn_status st = check_keys(m, e, ppl_keys, "perplexity", err);
    if (!st) st = get_path(m, e, "perplexity", &s->text_w, &s->text, err);
    if (!st) st = get_path(m, e, "base", &s->base_w, &s->base, err);
    if (!st) st = get_int(m, e, "ctx", 2, PARITY_PPL_MAX_CTX, &s->ctx, err);
    if (!st) st = get_int(m, e, "bytes", 1, INT64_MAX, &s->bytes, err);
    if (!st) st = get_num(m, e, "ppl_max", &s->ppl_max, err);
    if (!st) st = get_num(m, e, "kld_mean_max", &s->kld_mean_max, err);
    if (!st) st = get_num(m, e, "top1_min", &s->top1_min, err);
    if (!st) st = get_str(m, e, "numerics", &s->numerics, err);
    if (st) return st;
    if (!isnan(s->top1_min) && s->top1_min > 1)
        return key_fail(m, err, bn_yaml_get(e, "top1_min"), "top1_min", "a fraction: 0..1");
    if (!s->base && (!isnan(s->kld_mean_max) || !isnan(s->top1_min)))
        return key_fail(m, err, bn_yaml_get(e, !isnan(s->kld_mean_max) ? "kld_mean_max" : "top1_min"),
                        !isnan(s->kld_mean_max) ? "kld_mean_max" : "top1_min", "needs base: (the model to compare with)");
    if (isnan(s->ppl_max) && isnan(s->kld_mean_max) && isnan(s->top1_min))
        return key_fail(m, err, e, "ppl_max", "a perplexity entry needs a threshold: ppl_max, kld_mean_max or top1_min");
    return BN_OK;
}

static bn_status read_entry(manifest *m, node *e, size_t i, bn_error *err) {
    spec *s = &m->specs[i];
    s->at = e;
    if (!e || e->kind != BN_YAML_MAP)
        return key_fail(m, err, e, "entries", "item %zu: expected a mapping, got %s", i, bn_yaml_kind_name(e));
    node *name = bn_yaml_get(e, "name");
    s->name = bn_yaml_str(name);
    if (!name) return key_fail(m, err, e, "name", "missing (every entry has a unique name)");
    if (!s->name || !*s->name || strlen(s->name) > 128 || strspn(s->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(s->name) || s->name[0] == '.')
        return key_fail(m, err, name, "name", "'%s': 1..128 of A-Z a-z 0-9 . _ - (not starting with .)",
                        s->name ? s->name : bn_yaml_kind_name(name));
    for (size_t j = 0; j < i; j++)
        if (!strcmp(m->specs[j].name, s->name))
            return key_fail(m, err, name, "name", "'%s' is also the name of entry %zu (line %d)", s->name, j,
                            m->specs[j].at->line);
    bn_status st = get_path(m, e, "model", &s->model_w, &s->model, err);
    if (!st && !s->model) st = key_fail(m, err, e, "model", "missing");
    node *opt = bn_yaml_get(e, "optional");
    if (!st && opt && !bn_yaml_parse_bool(opt, &s->optional))
        st = key_fail(m, err, opt, "optional", "expected true or false");
    if (st) return st;
    return bn_yaml_get(e, "perplexity") ? read_ppl_entry(m, e, s, err) : read_parity_entry(m, e, s, err);
}

/* Parses and checks the manifest text (origin names it and gives the folder
 * paths are relative to). */
static bn_status parse_manifest(const char *path, const char *text, size_t len, const char *const *sets,
                                size_t n_sets, manifest *m, bn_error *err) {
    memset(m, 0, sizeof *m);
    m->path = path;
    uint8_t d[BN_SHA256_DIGEST_SIZE];
    bn_sha256_buffer(text, len, d);
    bn_sha256_hex(d, m->sha);
    bn_status st = bn_yaml_parse(path, text, len, MANIFEST_MAX_BYTES, "gate manifest", &m->doc, err);
    if (st) return st;
    const char *slash = strrchr(path, '/');
    m->dir = slash ? strndup(path, (size_t)(slash - path + (slash == path))) : strdup("");
    if (!m->dir) return bn_error_nomem(err, strlen(path), "%s", path);
    node *root = bn_yaml_root(m->doc);
    if (bn_yaml_first_alias(m->doc)) return key_fail(m, err, bn_yaml_first_alias(m->doc), NULL, "anchors and aliases are not used in a manifest");
    if (!root || root->kind != BN_YAML_MAP)
        return key_fail(m, err, root, NULL, "expected a mapping with entries:, got %s", bn_yaml_kind_name(root));
    static const char *const top_keys[] = {"gate", "vars", "entries", NULL};
    for (size_t i = 0; i < root->n; i++) {
        const char *k = bn_yaml_str(bn_yaml_key(root, i));
        int ok = 0;
        for (size_t j = 0; k && top_keys[j]; j++) ok |= !strcmp(k, top_keys[j]);
        if (!ok) return key_fail(m, err, bn_yaml_key(root, i), k ? k : "?", "not a manifest key (gate, vars, entries)");
    }
    node *g = bn_yaml_get(root, "gate");
    if (g && (!bn_yaml_str(g) || strcmp(bn_yaml_str(g), PARITY_GATE_VERSION)))
        return key_fail(m, err, g, "gate", "expected %s", PARITY_GATE_VERSION);
    node *vars = bn_yaml_get(root, "vars");
    if (vars && vars->kind != BN_YAML_MAP) return key_fail(m, err, vars, "vars", "expected a mapping NAME: VALUE");
    for (size_t i = 0; vars && i < vars->n; i++) {
        const char *k = bn_yaml_str(bn_yaml_key(vars, i)), *v = bn_yaml_str(bn_yaml_value(vars, i));
        if (!k || !v || m->n_vars == GATE_MAX_VARS)
            return key_fail(m, err, bn_yaml_key(vars, i), k ? k : "vars", "expected NAME: VALUE (at most %d)", GATE_MAX_VARS);
        m->var_name[m->n_vars] = k, m->var_value[m->n_vars++] = v;
    }
    for (size_t i = 0; i < n_sets; i++) {
        const char *eq = strchr(sets[i], '=');
        if (!eq || eq == sets[i] || m->n_vars == GATE_MAX_VARS)
            return bn_error_set(err, BN_ERR_INVALID, "--set '%s': expected NAME=VALUE", sets[i]);
        if (!(m->owned[m->n_owned] = strndup(sets[i], (size_t)(eq - sets[i]))))
            return bn_error_nomem(err, strlen(sets[i]), "--set");
        m->var_name[m->n_vars] = m->owned[m->n_owned++];
        m->var_value[m->n_vars++] = eq + 1;
    }
    node *entries = bn_yaml_get(root, "entries");
    if (!entries || entries->kind != BN_YAML_LIST || !entries->n)
        st = key_fail(m, err, entries ? entries : root, "entries", "expected a non-empty list of entries");
    if (!st && !(m->specs = calloc(entries->n, sizeof *m->specs)))
        st = bn_error_nomem(err, entries->n * sizeof *m->specs, "%s: entries", path);
    for (size_t i = 0; !st && i < entries->n; i++) {
        m->n = i + 1;
        st = read_entry(m, bn_yaml_item(entries, i), i, err);
    }
    return st;
}

static bn_status read_manifest(const char *path, const char *const *sets, size_t n_sets, manifest *m, bn_error *err) {
    char *text;
    size_t len;
    memset(m, 0, sizeof *m);
    bn_status st = bn_yaml_read_file(path, MANIFEST_MAX_BYTES, "gate manifest", &text, &len, err);
    if (!st) st = parse_manifest(path, text, len, sets, n_sets, m, err);
    free(text);
    return st;
}

bn_status parity_gate_manifest_check(const char *origin, const char *text, size_t len, const char *const *vars,
                                     size_t n_vars, size_t *n_entries, bn_error *err) {
    manifest m;
    bn_status st = parse_manifest(origin, text, len, vars, n_vars, &m, err);
    if (!st && n_entries) *n_entries = m.n;
    manifest_free(&m);
    return st;
}

/* ---- YAML out -------------------------------------------------------------------- */

/* A perplexity entry's figures and thresholds into map m (its perplexity
 * under ppl_key: "ppl" in the summary, "perplexity" in perplexity.yaml). */
static void ppl_figures(parity_doc_builder *b, parity_doc_node *m, const parity_gate_entry *e, const char *ppl_key) {
    parity_doc_int(b, m, "tokens", e->tokens);
    parity_doc_num_or_null(b, m, ppl_key, e->ppl), parity_doc_num_or_null(b, m, "ppl_max", e->ppl_max);
    parity_doc_num_or_null(b, m, "kld_mean", e->kld_mean), parity_doc_num_or_null(b, m, "kld_mean_max", e->kld_mean_max);
    parity_doc_num_or_null(b, m, "top1", e->top1), parity_doc_num_or_null(b, m, "top1_min", e->top1_min);
}

/* The summary as a document tree (parity/doc.h, the receipts' writer): figures
 * not measured are null, strings a YAML reader would take for something else
 * are quoted, and a number reads back as the same double, so a merge of
 * shards writes the whole run's bytes. */
static parity_doc_node *summary_doc(const parity_gate_summary *s, parity_doc_builder *b) {
    parity_doc_node *root = parity_doc_root(b), *n;
    parity_doc_str(b, root, "gate", PARITY_GATE_VERSION);
    parity_doc_str(b, root, "manifest", s->manifest);
    parity_doc_str(b, root, "manifest_sha256", s->manifest_sha256);
    if (s->shard_count) {
        if ((n = parity_doc_map(b, root, "shard"))) n->flow = 1;
        parity_doc_int(b, n, "index", s->shard_index);
        parity_doc_int(b, n, "count", s->shard_count);
    } else {
        parity_doc_null(b, root, "shard");
    }
    parity_doc_int(b, root, "entries_in_manifest", (int64_t)s->n_manifest);
    const int code = parity_gate_exit_code(s);
    parity_doc_str(b, root, "verdict", code == 2 ? "error" : code == 1 ? "fail" : "pass");
    if ((n = parity_doc_map(b, root, "counts"))) n->flow = 1;
    for (int v = 0; v < PARITY_GATE_VERDICT_COUNT; v++) parity_doc_int(b, n, verdict_names[v], (int64_t)s->counts[v]);
    parity_doc_node *list = parity_doc_list(b, root, "entries", 0);
    for (size_t i = 0; i < s->n; i++) {
        const parity_gate_entry *e = &s->entries[i];
        parity_doc_node *m = parity_doc_map(b, list, NULL);
        parity_doc_str(b, m, "name", e->name);
        parity_doc_int(b, m, "index", e->index);
        parity_doc_str(b, m, "kind", e->kind == PARITY_GATE_PERPLEXITY ? "perplexity" : "parity");
        parity_doc_str(b, m, "verdict", verdict_names[e->verdict]);
        parity_doc_str(b, m, "model", e->model);
        parity_doc_str(b, m, e->kind == PARITY_GATE_PERPLEXITY ? "text" : "reference", e->reference);
        if (e->kind == PARITY_GATE_PARITY) {
            parity_doc_str(b, m, "policy", e->policy);
            parity_doc_int(b, m, "compared", e->compared);
            parity_doc_int(b, m, "failed", e->failed);
        } else {
            ppl_figures(b, m, e, "ppl");
        }
        parity_doc_str(b, m, "message", e->message);
        parity_doc_str(b, m, "receipt", e->receipt);
        parity_doc_str(b, m, "detail", e->detail);
    }
    return root;
}

/* Writes the tree b built (root) to path as YAML, atomically, and frees it. */
static bn_status save_doc(parity_doc_node *root, const parity_doc_builder *b, const char *path, bn_error *err) {
    bn_status st = b->oom ? bn_error_nomem(err, b->oom_bytes, "%s: the document", path)
                          : parity_doc_save(root, PARITY_DOC_YAML, path, err);
    parity_doc_free(root);
    return st;
}

bn_status parity_gate_summary_save(const parity_gate_summary *s, const char *path, bn_error *err) {
    parity_doc_builder b = {0};
    return save_doc(summary_doc(s, &b), &b, path, err);
}

/* ---- YAML in --------------------------------------------------------------------- */

typedef struct yreader {
    const bn_yaml_doc *doc;
    bn_error *err;
    bn_status st;
} yreader;

static node *r_field(yreader *r, node *map, const char *path, const char *key, int required) {
    node *v = bn_yaml_get(map, key);
    if (!v && required && !r->st) {
        char f[96];
        snprintf(f, sizeof f, "%s%s", path, key);
        r->st = bn_yaml_fail(r->doc, r->err, map, BN_ERR_FORMAT, BN_YAML_PATH, f, "missing");
    }
    return v;
}

static void r_bad(yreader *r, node *v, const char *path, const char *key, const char *what) {
    char f[96];
    snprintf(f, sizeof f, "%s%s", path, key);
    if (!r->st) r->st = bn_yaml_fail(r->doc, r->err, v, BN_ERR_FORMAT, BN_YAML_PATH, f, "expected %s", what);
}

/* A string or null (NULL); strdup'ed. */
static char *r_str(yreader *r, node *map, const char *path, const char *key) {
    node *v = r_field(r, map, path, key, 1);
    if (!v || bn_yaml_is_null(v)) return NULL;
    const char *s = bn_yaml_str(v);
    if (!s) r_bad(r, v, path, key, "a string");
    char *d = s ? strdup(s) : NULL;
    if (s && !d && !r->st) r->st = bn_error_nomem(r->err, strlen(s), "%s", bn_yaml_origin(r->doc));
    return d;
}

static int64_t r_int(yreader *r, node *map, const char *path, const char *key, int64_t lo, int64_t hi) {
    node *v = r_field(r, map, path, key, 1);
    int64_t x = 0;
    if (v && (!bn_yaml_str(v) || !bn_yaml_parse_int(bn_yaml_str(v), lo, hi, &x))) r_bad(r, v, path, key, "an integer");
    return x;
}

static double r_num(yreader *r, node *map, const char *path, const char *key) {
    node *v = r_field(r, map, path, key, 1);
    double x = NAN;
    if (v && !bn_yaml_is_null(v) && (!bn_yaml_str(v) || !bn_yaml_parse_number(bn_yaml_str(v), 1, &x)))
        r_bad(r, v, path, key, "a number or null");
    return x;
}

static int r_enum(yreader *r, node *map, const char *path, const char *key, const char *const *names, int n) {
    node *v = r_field(r, map, path, key, 1);
    const char *s = bn_yaml_str(v);
    for (int i = 0; s && i < n; i++)
        if (!strcmp(s, names[i])) return i;
    if (v) r_bad(r, v, path, key, "one of the known words (docs/gate.md)");
    return 0;
}

static void read_summary_entry(yreader *r, node *m, size_t i, parity_gate_entry *e) {
    static const char *const kinds[] = {"parity", "perplexity"};
    char path[48];
    snprintf(path, sizeof path, "entries[%zu].", i);
    if (!m || m->kind != BN_YAML_MAP) return r_bad(r, m, path, "", "a mapping");
    e->name = r_str(r, m, path, "name");
    if (!r->st && !e->name) r_bad(r, bn_yaml_get(m, "name"), path, "name", "a name");
    e->index = r_int(r, m, path, "index", 0, INT32_MAX);
    e->kind = (parity_gate_kind)r_enum(r, m, path, "kind", kinds, 2);
    e->verdict = (parity_gate_verdict)r_enum(r, m, path, "verdict", verdict_names, PARITY_GATE_VERDICT_COUNT);
    e->model = r_str(r, m, path, "model");
    e->compared = e->failed = e->tokens = -1;
    e->ppl = e->ppl_max = e->kld_mean = e->kld_mean_max = e->top1 = e->top1_min = NAN;
    if (e->kind == PARITY_GATE_PARITY) {
        e->reference = r_str(r, m, path, "reference");
        e->policy = r_str(r, m, path, "policy");
        e->compared = r_int(r, m, path, "compared", -1, INT64_MAX);
        e->failed = r_int(r, m, path, "failed", -1, INT64_MAX);
    } else {
        e->reference = r_str(r, m, path, "text");
        e->tokens = r_int(r, m, path, "tokens", -1, INT64_MAX);
        e->ppl = r_num(r, m, path, "ppl"), e->ppl_max = r_num(r, m, path, "ppl_max");
        e->kld_mean = r_num(r, m, path, "kld_mean"), e->kld_mean_max = r_num(r, m, path, "kld_mean_max");
        e->top1 = r_num(r, m, path, "top1"), e->top1_min = r_num(r, m, path, "top1_min");
    }
    e->message = r_str(r, m, path, "message");
    e->receipt = r_str(r, m, path, "receipt");
    e->detail = r_str(r, m, path, "detail");
    /* what the summary links to stays inside the output folder */
    const char *links[2] = {e->receipt, e->detail};
    for (int k = 0; k < 2; k++)
        if (links[k] && (links[k][0] == '/' || strstr(links[k], "..")))
            r_bad(r, bn_yaml_get(m, k ? "detail" : "receipt"), path, k ? "detail" : "receipt",
                  "a path inside the output folder");
}

static bn_status read_summary(bn_yaml_doc *doc, parity_gate_summary **out, bn_error *err);

bn_status parity_gate_summary_load(const char *path, parity_gate_summary **out, bn_error *err) {
    *out = NULL;
    bn_yaml_doc *doc;
    bn_status st = bn_yaml_load_file(path, SUMMARY_MAX_BYTES, "gate summary", &doc, err);
    return st ? st : read_summary(doc, out, err);
}

bn_status parity_gate_summary_parse(const char *origin, const char *text, size_t len, parity_gate_summary **out,
                                    bn_error *err) {
    *out = NULL;
    bn_yaml_doc *doc;
    bn_status st = bn_yaml_parse(origin, text, len, SUMMARY_MAX_BYTES, "gate summary", &doc, err);
    return st ? st : read_summary(doc, out, err);
}

/* Reads the summary in doc and frees doc. */
static bn_status read_summary(bn_yaml_doc *doc, parity_gate_summary **out, bn_error *err) {
    const char *path = bn_yaml_origin(doc);
    yreader r = {.doc = doc, .err = err};
    parity_gate_summary *s = calloc(1, sizeof *s);
    node *root = bn_yaml_root(doc);
    if (!s) r.st = bn_error_nomem(err, sizeof *s, "%s", path);
    else if (!root || root->kind != BN_YAML_MAP) r_bad(&r, root, "", "(document)", "a mapping");
    else if (bn_yaml_first_alias(doc)) r_bad(&r, bn_yaml_first_alias(doc), "", "(document)", "no aliases");
    node *g = r.st ? NULL : r_field(&r, root, "", "gate", 1);
    if (g && (!bn_yaml_str(g) || strcmp(bn_yaml_str(g), PARITY_GATE_VERSION))) r_bad(&r, g, "", "gate", PARITY_GATE_VERSION);
    if (!r.st) {
        s->manifest = r_str(&r, root, "", "manifest");
        char *sha = r_str(&r, root, "", "manifest_sha256");
        if (sha && strlen(sha) == 64) memcpy(s->manifest_sha256, sha, 65);
        else r_bad(&r, bn_yaml_get(root, "manifest_sha256"), "", "manifest_sha256", "64 hex digits");
        free(sha);
        node *sh = r_field(&r, root, "", "shard", 1);
        if (sh && !bn_yaml_is_null(sh)) {
            s->shard_index = (int)r_int(&r, sh, "shard.", "index", 1, GATE_MAX_SHARDS);
            s->shard_count = (int)r_int(&r, sh, "shard.", "count", 1, GATE_MAX_SHARDS);
        }
        s->n_manifest = r_int(&r, root, "", "entries_in_manifest", 1, INT32_MAX);
    }
    node *list = r.st ? NULL : r_field(&r, root, "", "entries", 1);
    if (list && list->kind != BN_YAML_LIST) r_bad(&r, list, "", "entries", "a list");
    if (!r.st && list->n && !(s->entries = calloc(list->n, sizeof *s->entries)))
        r.st = bn_error_nomem(err, list->n * sizeof *s->entries, "%s: entries", path);
    for (size_t i = 0; !r.st && i < list->n; i++) {
        s->n = i + 1;
        read_summary_entry(&r, bn_yaml_item(list, i), i, &s->entries[i]);
        if (!r.st) s->counts[s->entries[i].verdict]++;
    }
    bn_yaml_free(doc);
    if (r.st) {
        parity_gate_summary_free(s);
        return r.st;
    }
    *out = s;
    return BN_OK;
}

/* ---- running one entry ----------------------------------------------------------- */

typedef struct gate_ctx {
    const parity_gate_opts *o;
    const manifest *m;
    bn_error *err;
} gate_ctx;

/* The first input file of s that does not exist, as the manifest writes
 * it (no machine path in the summary), else NULL. */
static const char *missing_file(const spec *s) {
    const char *files[] = {s->model, s->ref == REF_PYTHON ? NULL : s->ref_path, s->tokens_from,
                           s->policy && strchr(s->policy, '/') ? s->policy : NULL, s->text, s->base};
    const char *written[] = {s->model_w, s->ref_w, NULL, NULL, s->text_w, s->base_w};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (files[i] && !file_exists(files[i])) return written[i] ? written[i] : files[i];
    return NULL;
}

/* A model an entry evaluates, and its tokenizer; placed as --load says. */
static bn_status load_model(const gate_ctx *g, const char *path, bn_model **m, bn_tokenizer **tok, bn_error *err) {
    *tok = NULL;
    bn_status st = bn_model_load_with(path, g->o->map_models ? BN_GGUF_LOAD_MMAP : BN_GGUF_LOAD_MEMORY, m, err);
    if (!st && (st = bn_tokenizer_load((*m)->gguf, tok, err))) bn_error_prefix(err, path);
    return st;
}

/* The prompt's token ids: tokens as given, else the prompt tokenized with
 * BOS as the vocabulary says. */
static bn_status prompt_ids(const spec *s, const bn_tokenizer *tok, int32_t **ids, int64_t *n, bn_error *err) {
    if (s->tokens) {
        if (!(*ids = malloc((size_t)s->n_tokens * sizeof **ids))) return bn_error_nomem(err, 4 * (size_t)s->n_tokens, "tokens");
        memcpy(*ids, s->tokens, (size_t)s->n_tokens * sizeof **ids);
        *n = s->n_tokens;
        return BN_OK;
    }
    size_t count = 0;
    bn_status st = bn_tokenize(tok, s->prompt, strlen(s->prompt), true, false, ids, &count, err);
    *n = (int64_t)count;
    if (!st && !count) st = bn_error_set(err, BN_ERR_INVALID, "the prompt tokenizes to nothing");
    return st;
}

/* reference: {model: OTHER}: bitparity's engine traces the other model. */
static bn_status trace_other_model(gate_ctx *g, const spec *s, const char *out, bn_error *err) {
    bn_model *m = NULL;
    bn_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    int64_t n = 0;
    parity_trace *from = NULL;
    parity_eval *evals = NULL;
    parity_record_opts ro = {.model_path = s->ref_path, .n_decode = s->decode, .taps = s->taps,
                             .n_threads = g->o->threads, .out_path = out, .cancel = g->o->cancel,
                             .progress = g->o->progress};
    bn_status st = load_model(g, s->ref_path, &m, &tok, err);
    if (!st && !bn_numerics_parse(s->numerics ? s->numerics : "ggml-compat", &ro.numerics))
        st = bn_error_set(err, BN_ERR_INVALID, "numerics '%s': expected ggml-compat, f32 or llama.cpp-compat", s->numerics);
    if (!st && s->kv_type && !bn_kv_type_parse(s->kv_type, &ro.kv_type, &ro.v_type))
        st = bn_error_set(err, BN_ERR_INVALID, "kv-type '%s': expected f16, f32 or K,V", s->kv_type);
    if (!st && s->tokens_from) {
        st = parity_trace_open(s->tokens_from, &from, err);
        if (!st) st = parity_trace_evals(from, &evals, &ro.n_follow, err);
        ro.follow = evals;
    } else if (!st) {
        st = prompt_ids(s, tok, &ids, &n, err);
        ro.tokens = ids, ro.n_tokens = n;
    }
    if (!st) st = parity_record(m, &ro, err);
    free(evals), free(ids);
    parity_trace_close(from);
    bn_tokenizer_free(tok);
    bn_model_free(m);
    return st;
}

/* reference: python: reference/bitnet_ref.py traces the model (its output in log). */
static bn_status trace_python(gate_ctx *g, const spec *s, const char *out, const char *log, bn_error *err) {
    const parity_gate_opts *o = g->o;
    if (!o->python || !o->python_script)
        return bn_error_set(err, BN_ERR_INVALID, "reference: python needs the Python reference (--python)");
    bn_model *m = NULL;
    bn_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    int64_t n = 0, decode = s->decode;
    parity_trace *from = NULL;
    parity_eval *evals = NULL;
    bn_status st = load_model(g, s->model, &m, &tok, err);
    if (!st && s->tokens_from) { /* its prompt, and as many greedy steps as it has */
        st = parity_trace_open(s->tokens_from, &from, err);
        if (!st) st = parity_trace_evals(from, &evals, &n, err);
        if (!st && !(ids = malloc((size_t)evals[0].n_tokens * sizeof *ids))) st = bn_error_nomem(err, 4, "tokens");
        if (!st) memcpy(ids, evals[0].tokens, (size_t)evals[0].n_tokens * sizeof *ids);
        decode = n - 1, n = st ? 0 : evals[0].n_tokens;
    } else if (!st) {
        st = prompt_ids(s, tok, &ids, &n, err);
    }
    char *list = st ? NULL : malloc((size_t)n * 12 + 1), dec[24];
    if (!st && !list) st = bn_error_nomem(err, (size_t)n * 12, "tokens");
    for (int64_t i = 0, at = 0; !st && i < n; i++) at += sprintf(list + at, i ? ",%d" : "%d", ids[i]);
    snprintf(dec, sizeof dec, "%lld", (long long)decode);
    char *argv[16] = {(char *)o->python, (char *)o->python_script, "trace", "-m", s->model, "--tokens", list,
                      "--decode", dec, "-o", (char *)out};
    int argc = 11;
    if (s->numerics) argv[argc++] = "--numerics", argv[argc++] = (char *)s->numerics;
    if (s->taps) argv[argc++] = "--taps", argv[argc++] = (char *)s->taps;
    argv[argc] = NULL;
    if (!st) st = parity_run_child("reference: python", argv, log, o->cancel, err);
    free(list), free(evals), free(ids);
    parity_trace_close(from);
    bn_tokenizer_free(tok);
    bn_model_free(m);
    return st;
}

static void set_message(parity_gate_entry *e, char *msg) {
    free(e->message);
    e->message = msg;
}

static bn_status run_parity(gate_ctx *g, const spec *s, const char *dir, parity_gate_entry *e, bn_error *err) {
    char *ref = NULL, *log = NULL;
    bn_status st = BN_OK;
    if (s->ref != REF_TRACE) {
        ref = fmt_alloc("%s/reference.npz", dir);
        log = fmt_alloc("%s/python.log", dir);
        if (!ref || !log) st = bn_error_nomem(err, strlen(dir), "paths");
        else if (s->ref == REF_MODEL) st = trace_other_model(g, s, ref, err);
        else st = trace_python(g, s, ref, log, err);
    }
    parity_driver_opts d = {.reference = ref ? ref : s->ref_path, .map = s->map, .policy = s->policy,
                                  .model = s->model, .threads = g->o->threads, .map_model = g->o->map_models,
                                  .receipt = true,
                                  .numerics = s->numerics, .kv_cache = s->kv_type, .taps = s->taps,
                                  .cancel = g->o->cancel, .progress = g->o->progress};
    const parity_arbiter_opts arbiter = {.python = g->o->python, .script = g->o->python_script, .tmp_dir = dir,
                                         .cancel = g->o->cancel};
    if (s->arbiter && !(g->o->python && g->o->python_script))
        st = bn_error_set(err, BN_ERR_INVALID, "arbiter: python needs the Python reference (--python)");
    if (s->arbiter) d.arbiter = &arbiter;
    parity_driver_run *run = NULL;
    if (!st) st = parity_driver_run_job(&d, &run, err);
    char *receipt = st ? NULL : fmt_alloc("%s/receipt.yaml", dir);
    if (!st && !receipt) st = bn_error_nomem(err, strlen(dir), "paths");
    if (!st) st = parity_receipt_save(run->receipt, PARITY_RECEIPT_YAML, receipt, err);
    if (!st) {
        const parity_compare_result *r = run->result;
        e->verdict = r->pass ? PARITY_GATE_PASS : PARITY_GATE_FAIL;
        e->policy = strdup(parity_policy_name(run->policy));
        e->compared = r->counts.compared + r->counts.shape_mismatch;
        e->failed = r->counts.fail + r->counts.shape_mismatch;
        e->receipt = fmt_alloc("entries/%s/receipt.yaml", s->name);
        e->detail = fmt_alloc("entries/%s/report.html", s->name);
        if (r->first.found && !strcmp(r->first.metric, "shape"))
            set_message(e, fmt_alloc("first divergence: e%lld %s: shape mismatch", (long long)r->first.eval, r->first.tap));
        else if (r->first.found)
            set_message(e, fmt_alloc("first divergence: e%lld %s: %s = %.3g, limit %.3g", (long long)r->first.eval,
                                     r->first.tap, r->first.metric, r->first.value, r->first.limit));
        else if (!r->pass && r->diagnosis[0])
            set_message(e, strdup(r->diagnosis));
        else
            set_message(e, fmt_alloc("%lld taps compared, %lld bit-identical", (long long)r->counts.compared,
                                     (long long)r->counts.bit_identical));
    }
    parity_driver_run_free(run);
    free(receipt), free(ref), free(log);
    return st;
}

/* An entry's perplexity.yaml. */
static parity_doc_node *ppl_doc(const parity_gate_entry *e, parity_doc_builder *b) {
    parity_doc_node *root = parity_doc_root(b);
    parity_doc_str(b, root, "entry", e->name);
    parity_doc_str(b, root, "model", e->model);
    parity_doc_str(b, root, "text", e->reference);
    parity_doc_str(b, root, "verdict", verdict_names[e->verdict]);
    ppl_figures(b, root, e, "perplexity");
    parity_doc_str(b, root, "message", e->message);
    return root;
}

static bn_status run_ppl(gate_ctx *g, const spec *s, const char *dir, parity_gate_entry *e, bn_error *err) {
    bn_model *m = NULL, *bm = NULL;
    bn_tokenizer *tok = NULL, *btok = NULL;
    char *text = NULL, *base_logits = NULL, *out = NULL;
    size_t len = 0;
    parity_trace *base = NULL;
    parity_ppl_result r, br;
    parity_ppl_opts po = {.ctx = s->ctx, .params = bn_ctx_params_init()};
    po.params.n_threads = g->o->threads;
    po.params.cancel = g->o->cancel;
    po.progress = g->o->progress;
    bn_status st = BN_OK;
    if (!bn_numerics_parse(s->numerics ? s->numerics : "ggml-compat", &po.params.numerics))
        st = bn_error_set(err, BN_ERR_INVALID, "numerics '%s': expected ggml-compat, f32 or llama.cpp-compat", s->numerics);
    if (!st) st = bn_yaml_read_file(s->text, TEXT_MAX_BYTES, "text", &text, &len, err);
    if (!st && s->bytes > 0 && (uint64_t)s->bytes < len) len = (size_t)s->bytes;
    if (!st && s->base) { /* the base model's logits first, kept beside the receipt */
        st = load_model(g, s->base, &bm, &btok, err);
        if (!(base_logits = fmt_alloc("%s/base-logits.npz", dir)) && !st) st = bn_error_nomem(err, 64, "paths");
        po.save_logits = base_logits;
        if (!st) st = parity_perplexity(bm, btok, text, len, &po, &br, err);
        if (st) bn_error_prefix(err, s->base);
        po.save_logits = NULL;
        if (!st) st = parity_trace_open(base_logits, &base, err);
        po.kld_base = base;
    }
    if (!st) st = load_model(g, s->model, &m, &tok, err);
    if (!st && (st = parity_perplexity(m, tok, text, len, &po, &r, err))) bn_error_prefix(err, s->model);
    if (!st) {
        e->tokens = r.n_scored;
        e->ppl = r.perplexity;
        if (r.has_kld) e->kld_mean = r.kld_mean, e->top1 = r.same_top;
        char why[256] = "";
        size_t at = 0;
        if (!isnan(e->ppl_max) && !(e->ppl <= e->ppl_max))
            at += (size_t)snprintf(why + at, sizeof why - at, "ppl %.6g > ppl_max %.6g; ", e->ppl, e->ppl_max);
        if (!isnan(e->kld_mean_max) && !(e->kld_mean <= e->kld_mean_max) && at < sizeof why)
            at += (size_t)snprintf(why + at, sizeof why - at, "kld_mean %.6g > kld_mean_max %.6g; ", e->kld_mean, e->kld_mean_max);
        if (!isnan(e->top1_min) && !(e->top1 >= e->top1_min) && at < sizeof why)
            at += (size_t)snprintf(why + at, sizeof why - at, "top1 %.6g < top1_min %.6g; ", e->top1, e->top1_min);
        e->verdict = at ? PARITY_GATE_FAIL : PARITY_GATE_PASS;
        if (at) why[strlen(why) - 2] = '\0';
        if (at) set_message(e, strdup(why));
        else if (r.has_kld)
            set_message(e, fmt_alloc("ppl %.6g over %lld tokens; kld_mean %.3g, top1 %.4g vs the base", e->ppl,
                                     (long long)e->tokens, e->kld_mean, e->top1));
        else set_message(e, fmt_alloc("ppl %.6g over %lld tokens", e->ppl, (long long)e->tokens));
        e->receipt = fmt_alloc("entries/%s/perplexity.yaml", s->name);
        if (!(out = fmt_alloc("%s/perplexity.yaml", dir))) st = bn_error_nomem(err, 64, "paths");
        if (!st) {
            parity_doc_builder b = {0};
            st = save_doc(ppl_doc(e, &b), &b, out, err);
        }
    }
    parity_trace_close(base);
    free(out), free(base_logits), free(text);
    bn_tokenizer_free(tok), bn_tokenizer_free(btok);
    bn_model_free(m), bn_model_free(bm);
    return st;
}

/* Fills e from s (what the manifest says), then runs it unless a file is
 * missing. A failure of the run is the entry's ERROR; only cancellation,
 * memory and the output folder stop the gate. */
static bn_status run_entry(gate_ctx *g, const spec *s, int64_t index, parity_gate_entry *e, bn_error *err) {
    *e = (parity_gate_entry){.index = index, .kind = s->kind, .compared = -1, .failed = -1, .tokens = -1,
                             .ppl = NAN, .kld_mean = NAN, .top1 = NAN, .ppl_max = s->ppl_max,
                             .kld_mean_max = s->kld_mean_max, .top1_min = s->top1_min};
    e->name = strdup(s->name);
    e->model = strdup(s->model_w);
    e->reference = s->kind == PARITY_GATE_PERPLEXITY ? strdup(s->text_w)
                   : s->ref == REF_MODEL            ? fmt_alloc("model: %s", s->ref_w)
                                                    : strdup(s->ref_w);
    if (!e->name || !e->model || !e->reference) return bn_error_nomem(err, 256, "the gate's entry %s", s->name);
    if (g->o->on_entry) g->o->on_entry(g->o->user, e, 0);
    const char *missing = missing_file(s);
    if (missing) {
        e->verdict = s->optional ? PARITY_GATE_SKIPPED : PARITY_GATE_ERROR;
        e->message = fmt_alloc("%s: %s", s->optional ? "skipped, missing" : "missing", missing);
    } else {
        char *dir = fmt_alloc("%s/entries/%s", g->o->out_dir, s->name);
        bn_status st = dir ? make_dirs(dir, err) : bn_error_nomem(err, 64, "paths");
        if (st) {
            free(dir);
            return st;
        }
        bn_error eerr = {0};
        st = s->kind == PARITY_GATE_PERPLEXITY ? run_ppl(g, s, dir, e, &eerr) : run_parity(g, s, dir, e, &eerr);
        free(dir);
        if (st == BN_ERR_CANCELLED || st == BN_ERR_NOMEM) {
            *err = eerr;
            return st;
        }
        if (st) {
            e->verdict = PARITY_GATE_ERROR;
            set_message(e, strdup(eerr.msg));
            free(e->receipt), free(e->detail);
            e->receipt = e->detail = NULL;
        }
    }
    if (g->o->on_entry) g->o->on_entry(g->o->user, e, 1);
    return BN_OK;
}

static char *base_name_dup(const char *path) {
    const char *slash = strrchr(path, '/');
    return strdup(slash ? slash + 1 : path);
}

bn_status parity_gate_run(const char *path, const parity_gate_opts *o, parity_gate_summary **out, bn_error *err) {
    *out = NULL;
    if (o->shard_count < 0 || o->shard_index < 0 || o->shard_index > o->shard_count || !o->shard_index != !o->shard_count)
        return bn_error_set(err, BN_ERR_INVALID, "--shard %d/%d: expected I/N with 1 <= I <= N", o->shard_index, o->shard_count);
    if (!o->out_dir) return bn_error_set(err, BN_ERR_INVALID, "the gate needs an output folder");
    manifest m;
    bn_status st = read_manifest(path, o->vars, o->n_vars, &m, err);
    parity_gate_summary *s = st ? NULL : calloc(1, sizeof *s);
    if (!st && !s) st = bn_error_nomem(err, sizeof *s, "the gate's summary");
    if (!st) {
        s->manifest = base_name_dup(path);
        memcpy(s->manifest_sha256, m.sha, sizeof s->manifest_sha256);
        s->shard_index = o->shard_index, s->shard_count = o->shard_count;
        s->n_manifest = (int64_t)m.n;
        s->entries = calloc(m.n, sizeof *s->entries);
        if (!s->entries || !s->manifest) st = bn_error_nomem(err, m.n * sizeof *s->entries, "the gate's entries");
    }
    if (!st) st = make_dirs(o->out_dir, err);
    gate_ctx g = {.o = o, .m = &m, .err = err};
    for (size_t i = 0; !st && i < m.n; i++) {
        if (o->shard_count && parity_gate_shard_of(m.specs[i].name, o->shard_count) != o->shard_index) continue;
        if ((st = bn_cancel_check(o->cancel, err))) break;
        st = run_entry(&g, &m.specs[i], (int64_t)i, &s->entries[s->n], err);
        s->n++;
        if (!st) s->counts[s->entries[s->n - 1].verdict]++;
    }
    char *sp = st ? NULL : fmt_alloc("%s/summary.yaml", o->out_dir);
    if (!st && !sp) st = bn_error_nomem(err, 64, "paths");
    if (!st) st = parity_gate_summary_save(s, sp, err);
    free(sp);
    manifest_free(&m);
    if (st) {
        parity_gate_summary_free(s);
        return st;
    }
    *out = s;
    return BN_OK;
}

/* ---- merging shards -------------------------------------------------------------- */

static int cmp_index(const void *a, const void *b) {
    const parity_gate_entry *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Copies src_dir/rel to dst_dir/rel (atomically), creating its folder. */
static bn_status copy_file(const char *src_dir, const char *dst_dir, const char *rel, bn_error *err) {
    char *src = fmt_alloc("%s/%s", src_dir, rel), *dst = fmt_alloc("%s/%s", dst_dir, rel), *text = NULL;
    size_t len = 0;
    bn_status st = src && dst ? bn_yaml_read_file(src, SIZE_MAX / 2, "file", &text, &len, err)
                              : bn_error_nomem(err, 64, "paths");
    char *slash = st ? NULL : strrchr(dst, '/');
    if (slash) {
        *slash = '\0';
        st = make_dirs(dst, err);
        *slash = '/';
    }
    bn_atomic_file *af = NULL;
    if (!st) st = bn_atomic_file_open(dst, &af, err);
    if (!st) st = bn_atomic_file_write(af, text, len, err);
    if (!st) st = bn_atomic_file_commit(af, err), af = NULL;
    bn_atomic_file_abort(af);
    free(src), free(dst), free(text);
    return st;
}

static int same_dir(const char *a, const char *b) {
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

bn_status parity_gate_merge(const char *const *dirs, size_t n, const char *out_dir, parity_gate_summary **out,
                            bn_error *err) {
    *out = NULL;
    if (!n) return bn_error_set(err, BN_ERR_INVALID, "gate --merge: no shard folders");
    parity_gate_summary **parts = calloc(n, sizeof *parts), *s = calloc(1, sizeof *s);
    char **paths = calloc(n, sizeof *paths);
    bn_status st = parts && s && paths ? BN_OK : bn_error_nomem(err, n * 16, "gate --merge");
    size_t total = 0;
    for (size_t i = 0; !st && i < n; i++) {
        if (!(paths[i] = fmt_alloc("%s/summary.yaml", dirs[i]))) st = bn_error_nomem(err, 64, "paths");
        if (!st) st = parity_gate_summary_load(paths[i], &parts[i], err);
        if (st) break;
        const parity_gate_summary *p = parts[i], *p0 = parts[0];
        if (!p->shard_count)
            st = bn_error_set(err, BN_ERR_INVALID, "%s: not a shard's summary (shard: null)", paths[i]);
        else if (strcmp(p->manifest_sha256, p0->manifest_sha256) || p->shard_count != p0->shard_count ||
                 p->n_manifest != p0->n_manifest)
            st = bn_error_set(err, BN_ERR_INVALID, "%s: shard %d/%d of another manifest or split than %s's (%d/%d)",
                              paths[i], p->shard_index, p->shard_count, paths[0], p0->shard_index, p0->shard_count);
        for (size_t j = 0; !st && j < i; j++)
            if (parts[j]->shard_index == p->shard_index)
                st = bn_error_set(err, BN_ERR_INVALID, "%s and %s are both shard %d/%d", paths[j], paths[i],
                                  p->shard_index, p->shard_count);
        total += p->n;
    }
    if (!st && (size_t)parts[0]->shard_count != n) {
        int missing = 1;
        for (int k = 1; k <= parts[0]->shard_count; k++) {
            int found = 0;
            for (size_t i = 0; i < n; i++) found |= parts[i]->shard_index == k;
            if (!found) { missing = k; break; }
        }
        st = bn_error_set(err, BN_ERR_INVALID, "gate --merge: shard %d/%d is missing (%zu of %d given)", missing,
                          parts[0]->shard_count, n, parts[0]->shard_count);
    }
    if (!st && total != (size_t)parts[0]->n_manifest)
        st = bn_error_set(err, BN_ERR_INVALID, "gate --merge: the shards hold %zu entries, the manifest %lld", total,
                          (long long)parts[0]->n_manifest);
    if (!st) {
        s->manifest = strdup(parts[0]->manifest);
        memcpy(s->manifest_sha256, parts[0]->manifest_sha256, sizeof s->manifest_sha256);
        s->n_manifest = parts[0]->n_manifest;
        if (!(s->entries = calloc(total, sizeof *s->entries)) || !s->manifest)
            st = bn_error_nomem(err, total * sizeof *s->entries, "gate --merge");
    }
    for (size_t i = 0; !st && i < n; i++) { /* the entries move over */
        for (size_t k = 0; k < parts[i]->n; k++) s->entries[s->n++] = parts[i]->entries[k];
        parts[i]->n = 0;
    }
    if (!st && s->n) qsort(s->entries, s->n, sizeof *s->entries, cmp_index); /* entries may be NULL */
    for (size_t i = 0; !st && i < s->n; i++) {
        if (s->entries[i].index != (int64_t)i)
            st = bn_error_set(err, BN_ERR_INVALID, "gate --merge: entry %zu of the manifest is %s", i,
                              s->entries[i].index < (int64_t)i ? "given twice" : "missing");
        else s->counts[s->entries[i].verdict]++;
    }
    if (!st && out_dir) st = make_dirs(out_dir, err);
    for (size_t i = 0; !st && out_dir && i < n; i++) {
        if (same_dir(dirs[i], out_dir)) continue;
        for (size_t k = 0; !st && k < s->n; k++) {
            const parity_gate_entry *e = &s->entries[k];
            if (parity_gate_shard_of(e->name, parts[0]->shard_count) != parts[i]->shard_index) continue;
            if (e->receipt) st = copy_file(dirs[i], out_dir, e->receipt, err);
            if (!st && e->detail) st = copy_file(dirs[i], out_dir, e->detail, err);
        }
    }
    if (!st && out_dir) {
        char *sp = fmt_alloc("%s/summary.yaml", out_dir);
        st = sp ? parity_gate_summary_save(s, sp, err) : bn_error_nomem(err, 64, "paths");
        free(sp);
    }
    for (size_t i = 0; i < n; i++) {
        if (parts) parity_gate_summary_free(parts[i]);
        if (paths) free(paths[i]);
    }
    free(parts), free(paths);
    if (st) {
        parity_gate_summary_free(s);
        return st;
    }
    *out = s;
    return BN_OK;
}
