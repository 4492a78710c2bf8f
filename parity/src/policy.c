/* policy.c — YAML tolerance policies (contracts in parity/policy.h).
 *
 * The file is loaded through the YAML layer (bitnet/yaml_doc.h), so every node
 * keeps its line for error messages. Keys are described once, in key_table;
 * parsing, overlaying a rule on the defaults and checking metrics are loops
 * over it. */
#include "parity/policy.h"

#include "bitnet/yaml_doc.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct policy_rule {
    char *glob;          /* the rule's match pattern */
    parity_limits lim;   /* only the keys the rule sets; others unset */
} policy_rule;

struct parity_policy {
    char *origin;        /* file path or "builtin:<name>" */
    char *name, *description;
    char **numerics;     /* [n_numerics] mode names */
    size_t n_numerics;
    char **accept;       /* [n_accept] equivalences that pass (parity_policy_accepts) */
    size_t n_accept;
    parity_limits defaults;
    policy_rule *rules;  /* [n_rules], file order */
    size_t n_rules;
    char sha256[BN_SHA256_HEX_SIZE];
};

/* ---- keys ------------------------------------------------------------------ */

typedef enum key_kind {
    K_MAX,    /* number ≥ 0, .inf allowed: metric ≤ limit */
    K_COSINE, /* number in [−1, 1]: metric ≥ limit */
    K_FRAC,   /* number in [0, 1]: metric ≥ limit */
    K_ULP,    /* integer ≥ 0 or .inf: metric ≤ limit */
    K_FLAG,   /* true / false */
} key_kind;

typedef enum metric_src { SRC_NONE, SRC_TENSOR, SRC_LOGITS } metric_src;

/* One limit key: where it lives in parity_limits and, for numeric keys, the
 * metric it bounds (a double field of parity_metrics or of the logits
 * summary, except ulp_max which is a uint32). Table order is check order. */
typedef struct key_def {
    const char *key;
    key_kind kind;
    size_t field;       /* offsetof(parity_limits, ...) */
    const char *metric; /* name reported on failure */
    metric_src src;
    size_t value;       /* offsetof in the metrics struct of src */
} key_def;

#define LIM(f) offsetof(parity_limits, f)
#define TEN(f) SRC_TENSOR, offsetof(parity_metrics, f)
#define LGT(f) SRC_LOGITS, offsetof(parity_logits_summary, f)

static const key_def key_table[] = {
    {"skip", K_FLAG, LIM(skip), NULL, SRC_NONE, 0},
    {"allow_nan", K_FLAG, LIM(allow_nan), NULL, SRC_NONE, 0},
    {"bit_identical", K_FLAG, LIM(bit_identical), NULL, SRC_NONE, 0},
    {"ulp_max", K_ULP, LIM(ulp_max), "ulp_max", TEN(ulp_max)},
    {"nmse_max", K_MAX, LIM(nmse_max), "nmse", TEN(nmse)},
    {"nmse_llama_max", K_MAX, LIM(nmse_llama_max), "nmse_llama", TEN(nmse_llama)},
    {"cosine_min", K_COSINE, LIM(cosine_min), "cosine", TEN(cosine)},
    {"max_abs_max", K_MAX, LIM(max_abs_max), "max_abs", TEN(max_abs)},
    {"rel_rms_max", K_MAX, LIM(rel_rms_max), "rel_rms", TEN(rel_rms)},
    {"kld_mean_max", K_MAX, LIM(kld_mean_max), "kld_mean", LGT(kld_mean)},
    {"kld_p99_max", K_MAX, LIM(kld_p99_max), "kld_p99", LGT(kld_p99)},
    {"kld_max_max", K_MAX, LIM(kld_max_max), "kld_max", LGT(kld_max)},
    {"top1_agree_min", K_FRAC, LIM(top1_agree_min), "top1_agree", LGT(top1_agree)},
    {"topk_overlap_min", K_FRAC, LIM(topk_overlap_min), "top5_overlap", LGT(top5_overlap)},
    {"same_top_p_min", K_FRAC, LIM(same_top_p_min), "same_top_p", LGT(same_top_p)},
};
#define N_KEYS (sizeof key_table / sizeof key_table[0])

#undef LIM
#undef TEN
#undef LGT

static double *lim_num(parity_limits *l, const key_def *k) { return (double *)((char *)l + k->field); }
static signed char *lim_flag(parity_limits *l, const key_def *k) { return (signed char *)((char *)l + k->field); }
static double get_num(const parity_limits *l, const key_def *k) { return *(const double *)((const char *)l + k->field); }
static signed char get_flag(const parity_limits *l, const key_def *k) {
    return *(const signed char *)((const char *)l + k->field);
}

static parity_limits limits_unset(void) {
    parity_limits l;
    memset(&l, 0, sizeof l);
    for (size_t i = 0; i < N_KEYS; i++) {
        if (key_table[i].kind == K_FLAG)
            *lim_flag(&l, &key_table[i]) = -1;
        else
            *lim_num(&l, &key_table[i]) = NAN;
    }
    l.rule = "defaults";
    return l;
}

/* Copies into dst every key that src sets. */
static void limits_overlay(parity_limits *dst, const parity_limits *src) {
    for (size_t i = 0; i < N_KEYS; i++) {
        const key_def *k = &key_table[i];
        if (k->kind == K_FLAG) {
            if (get_flag(src, k) >= 0) *lim_flag(dst, k) = get_flag(src, k);
        } else if (!isnan(get_num(src, k))) {
            *lim_num(dst, k) = get_num(src, k);
        }
    }
}

/* ---- glob ------------------------------------------------------------------ */

/* p points just after '['. Sets *hit when c is in the set; returns the
 * character after the closing ']', or NULL when there is none. */
static const char *match_set(const char *p, char c, int *hit) {
    int negate = *p == '!' || *p == '^';
    if (negate) p++;
    int in = 0;
    const char *start = p;
    while (*p && (*p != ']' || p == start)) {
        if (p[1] == '-' && p[2] && p[2] != ']') {
            in |= (unsigned char)c >= (unsigned char)p[0] && (unsigned char)c <= (unsigned char)p[2];
            p += 3;
        } else {
            in |= *p == c;
            p++;
        }
    }
    if (*p != ']') return NULL;
    *hit = in != negate;
    return p + 1;
}

int parity_glob_match(const char *pat, const char *s) {
    const char *star_p = NULL, *star_s = NULL; /* resume point after the last '*' */
    while (*s) {
        if (*pat == '*') {
            star_p = ++pat;
            star_s = s;
            continue;
        }
        if (*pat == '[') {
            int hit = 0;
            const char *next = match_set(pat + 1, *s, &hit);
            if (!next) return 0;
            if (hit) {
                pat = next;
                s++;
                continue;
            }
        } else if (*pat && (*pat == '?' || *pat == *s)) {
            pat++;
            s++;
            continue;
        }
        if (!star_p) return 0;
        pat = star_p;
        s = ++star_s;
    }
    while (*pat == '*') pat++;
    return *pat == '\0';
}

static int glob_valid(const char *pat) {
    for (; *pat; pat++) {
        if (*pat != '[') continue;
        int hit;
        const char *next = match_set(pat + 1, 'x', &hit);
        if (!next) return 0;
        pat = next - 1;
    }
    return 1;
}

/* ---- parsing ----------------------------------------------------------------- */

typedef struct parse_ctx {
    const bn_yaml_doc *doc;
    bn_error *err;
} parse_ctx;

#define fail(c, code, node, key, ...) bn_yaml_fail((c)->doc, (c)->err, node, code, BN_YAML_KEY, key, __VA_ARGS__)

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* A short excerpt of a scalar for messages (values can be long). */
static const char *excerpt(const bn_yaml_node *n, char buf[48]) {
    const char *v = bn_yaml_str(n);
    if (!v) return "?";
    snprintf(buf, 48, "%.40s%s", v, strlen(v) > 40 ? "..." : "");
    return buf;
}

/* What a key that is not a name is, for "keys must be names, got ...". */
static const char *not_a_name(const bn_yaml_node *k) {
    return k->kind == BN_YAML_SCALAR ? "a string with a NUL byte" : bn_yaml_kind_name(k);
}

static bn_status parse_flag(const parse_ctx *c, const bn_yaml_node *n, const char *key, signed char *out) {
    int b;
    char buf[48];
    if (bn_yaml_parse_bool(n, &b)) return *out = (signed char)b, BN_OK;
    if (n->kind != BN_YAML_SCALAR)
        return fail(c, BN_ERR_FORMAT, n, key, "expected true or false, got %s", bn_yaml_kind_name(n));
    return fail(c, BN_ERR_FORMAT, n, key, "expected true or false, got '%s'", excerpt(n, buf));
}

static bn_status parse_limit_value(const parse_ctx *c, const bn_yaml_node *n, const key_def *k, double *out) {
    const char *v = bn_yaml_str(n);
    char buf[48];
    if (n->kind != BN_YAML_SCALAR)
        return fail(c, BN_ERR_FORMAT, n, k->key, "expected a number, got %s", bn_yaml_kind_name(n));
    /* a quoted "1e-6" is a string to YAML, and a limit is never NaN */
    if (!v || !n->plain || !bn_yaml_parse_number(v, 0, out))
        return fail(c, BN_ERR_FORMAT, n, k->key, "expected a number, got '%s'", excerpt(n, buf));
    double d = *out;
    switch (k->kind) {
    case K_COSINE:
        if (d < -1 || d > 1) return fail(c, BN_ERR_FORMAT, n, k->key, "%g is outside [-1, 1]", d);
        break;
    case K_FRAC:
        if (d < 0 || d > 1) return fail(c, BN_ERR_FORMAT, n, k->key, "%g is outside [0, 1]", d);
        break;
    case K_ULP:
        if (d < 0 || (isfinite(d) && (d != floor(d) || d > UINT32_MAX)))
            return fail(c, BN_ERR_FORMAT, n, k->key, "%g is not a whole number of ulps in [0, 2^32)", d);
        break;
    default:
        if (d < 0) return fail(c, BN_ERR_FORMAT, n, k->key, "%g is negative", d);
    }
    return BN_OK;
}

static const key_def *find_key(const char *name) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(key_table[i].key, name)) return &key_table[i];
    return NULL;
}

/* Parses a mapping of limit keys into *lim. When match is not NULL the
 * mapping is a rule and its 'match' scalar is returned there. */
static bn_status parse_limits(const parse_ctx *c, const bn_yaml_node *map, const char *what, parity_limits *lim,
                              const bn_yaml_node **match) {
    if (map->kind != BN_YAML_MAP)
        return fail(c, BN_ERR_FORMAT, map, what, "expected a mapping of limits, got %s", bn_yaml_kind_name(map));
    uint32_t seen = 0; /* bit per key_table entry, bit 31 for match */
    for (size_t i = 0; i < map->n; i++) {
        const bn_yaml_node *kn = bn_yaml_key(map, i), *vn = bn_yaml_value(map, i);
        const char *name = bn_yaml_str(kn);
        char buf[48];
        if (!name) return fail(c, BN_ERR_FORMAT, kn, what, "keys must be names, got %s", not_a_name(kn));
        if (match && !strcmp(name, "match")) {
            if (seen & (1u << 31)) return fail(c, BN_ERR_FORMAT, kn, "match", "duplicate key");
            seen |= 1u << 31;
            *match = vn;
            continue;
        }
        const key_def *k = find_key(name);
        if (!k)
            return fail(c, BN_ERR_FORMAT, kn, excerpt(kn, buf),
                        "unknown key in %s (limit keys: nmse_max nmse_llama_max cosine_min max_abs_max "
                        "rel_rms_max ulp_max bit_identical allow_nan skip kld_mean_max kld_p99_max kld_max_max "
                        "top1_agree_min topk_overlap_min same_top_p_min%s)",
                        what, match ? " match" : "");
        uint32_t bit = 1u << (k - key_table);
        if (seen & bit) return fail(c, BN_ERR_FORMAT, kn, k->key, "duplicate key");
        seen |= bit;
        bn_status st = k->kind == K_FLAG ? parse_flag(c, vn, k->key, lim_flag(lim, k))
                                         : parse_limit_value(c, vn, k, lim_num(lim, k));
        if (st != BN_OK) return st;
    }
    if (match && !(seen & (1u << 31)))
        return fail(c, BN_ERR_FORMAT, map, "match", "%s has no 'match' glob", what);
    return BN_OK;
}

static bn_status parse_rules(const parse_ctx *c, const bn_yaml_node *seq, parity_policy *p) {
    if (seq->kind != BN_YAML_LIST)
        return fail(c, BN_ERR_FORMAT, seq, "rules", "expected a list of rules, got %s", bn_yaml_kind_name(seq));
    size_t n = seq->n;
    p->rules = calloc(n ? n : 1, sizeof *p->rules);
    if (!p->rules) return fail(c, BN_ERR_NOMEM, seq, "rules", "cannot allocate %zu rules", n);
    for (size_t i = 0; i < n; i++) {
        const bn_yaml_node *rn = bn_yaml_item(seq, i);
        char what[32];
        snprintf(what, sizeof what, "rule %zu", i + 1);
        policy_rule *r = &p->rules[i];
        r->lim = limits_unset();
        const bn_yaml_node *mn = NULL;
        bn_status st = parse_limits(c, rn, what, &r->lim, &mn);
        if (st != BN_OK) return st;
        const char *glob = bn_yaml_str(mn);
        if (!glob || !*glob)
            return fail(c, BN_ERR_FORMAT, mn, "match", "expected a non-empty glob string, got %s",
                        mn->kind == BN_YAML_SCALAR ? "an empty string" : bn_yaml_kind_name(mn));
        if (!glob_valid(glob)) return fail(c, BN_ERR_FORMAT, mn, "match", "unterminated '[' in glob '%s'", glob);
        if (!(r->glob = dup_str(glob)))
            return fail(c, BN_ERR_NOMEM, mn, "match", "out of memory (%zu bytes)", strlen(glob) + 1);
        r->lim.rule = r->glob;
        r->lim.rule_line = rn->line;
        p->n_rules = i + 1;
    }
    return BN_OK;
}

static bn_status parse_string(const parse_ctx *c, const bn_yaml_node *n, const char *key, char **out) {
    const char *v = bn_yaml_str(n);
    if (!v) return fail(c, BN_ERR_FORMAT, n, key, "expected a string, got %s", bn_yaml_kind_name(n));
    if (!(*out = dup_str(v))) return fail(c, BN_ERR_NOMEM, n, key, "out of memory (%zu bytes)", strlen(v) + 1);
    return BN_OK;
}

/* A list of names, each one of `allowed` (a NULL-terminated list also
 * spelled out in `allowed_text` for the message), into *out / *n. */
static bn_status parse_name_list(const parse_ctx *c, const bn_yaml_node *seq, const char *key, const char *noun,
                                 const char *const *allowed, const char *allowed_text, char ***out, size_t *n_out) {
    if (seq->kind != BN_YAML_LIST)
        return fail(c, BN_ERR_FORMAT, seq, key, "expected a list of %ss, got %s", noun, bn_yaml_kind_name(seq));
    size_t n = seq->n;
    *out = calloc(n ? n : 1, sizeof **out);
    if (!*out) return fail(c, BN_ERR_NOMEM, seq, key, "out of memory (%zu bytes)", (n ? n : 1) * sizeof **out);
    for (size_t i = 0; i < n; i++) {
        const bn_yaml_node *m = bn_yaml_item(seq, i);
        const char *v = bn_yaml_str(m);
        size_t a = 0;
        while (v && allowed[a] && strcmp(v, allowed[a])) a++;
        if (!v || !allowed[a]) {
            char buf[48];
            return fail(c, BN_ERR_FORMAT, m, key, "unknown %s '%s' (%s)", noun, v ? excerpt(m, buf) : "?",
                        allowed_text);
        }
        bn_status st = parse_string(c, m, key, &(*out)[i]);
        if (st != BN_OK) return st;
        *n_out = i + 1;
    }
    return BN_OK;
}

static bn_status parse_numerics(const parse_ctx *c, const bn_yaml_node *seq, parity_policy *p) {
    static const char *const modes[] = {"ggml-compat", "f32", "llama.cpp-compat", NULL};
    return parse_name_list(c, seq, "numerics", "mode", modes, "modes: ggml-compat, f32, llama.cpp-compat", &p->numerics,
                           &p->n_numerics);
}

/* Equivalences a comparison may pass with (hints.h: parity_hints_accept). */
static bn_status parse_accept(const parse_ctx *c, const bn_yaml_node *seq, parity_policy *p) {
    static const char *const known[] = {"equivalent-rotary-layout", NULL};
    return parse_name_list(c, seq, "accept", "equivalence", known, "equivalences: equivalent-rotary-layout", &p->accept,
                           &p->n_accept);
}

static const char *const top_keys[] = {"policy", "name", "description", "numerics", "floors", "defaults", "rules",
                                       "accept"};
enum { T_POLICY, T_NAME, T_DESCRIPTION, T_NUMERICS, T_FLOORS, T_DEFAULTS, T_RULES, T_ACCEPT, N_TOP };

static bn_status parse_top_entry(const parse_ctx *c, int which, const bn_yaml_node *vn, parity_policy *p) {
    switch (which) {
    case T_NAME: {
        bn_status st = parse_string(c, vn, "name", &p->name);
        if (st == BN_OK && !*p->name) return fail(c, BN_ERR_FORMAT, vn, "name", "must not be empty");
        return st;
    }
    case T_DESCRIPTION: return parse_string(c, vn, "description", &p->description);
    case T_NUMERICS: return parse_numerics(c, vn, p);
    case T_FLOORS:
        if (vn->kind != BN_YAML_MAP)
            return fail(c, BN_ERR_FORMAT, vn, "floors", "expected a mapping, got %s", bn_yaml_kind_name(vn));
        return BN_OK; /* recorded for humans, not interpreted */
    case T_DEFAULTS: return parse_limits(c, vn, "defaults", &p->defaults, NULL);
    case T_RULES: return parse_rules(c, vn, p);
    case T_ACCEPT: return parse_accept(c, vn, p);
    default: return BN_OK; /* T_POLICY was checked first */
    }
}

static int top_key_index(const char *name) {
    for (int i = 0; i < N_TOP; i++)
        if (!strcmp(name, top_keys[i])) return i;
    return -1;
}

/* The version decides how everything else reads, so it is found and checked
 * before any other key is judged. */
static bn_status check_version(const parse_ctx *c, const bn_yaml_node *root) {
    const bn_yaml_node *vn = bn_yaml_get(root, "policy");
    char buf[48];
    if (!vn)
        return fail(c, BN_ERR_FORMAT, root, "policy", "missing (the first line should be 'policy: %s')",
                    PARITY_POLICY_VERSION);
    const char *v = bn_yaml_str(vn);
    if (!v)
        return fail(c, BN_ERR_FORMAT, vn, "policy", "expected '%s', got %s", PARITY_POLICY_VERSION,
                    bn_yaml_kind_name(vn));
    if (strcmp(v, PARITY_POLICY_VERSION))
        return fail(c, BN_ERR_UNSUPPORTED, vn, "policy", "unsupported version '%s' (expected %s)",
                    excerpt(vn, buf), PARITY_POLICY_VERSION);
    return BN_OK;
}

static bn_status parse_root(const parse_ctx *c, const bn_yaml_node *root, parity_policy *p) {
    if (!root) return fail(c, BN_ERR_FORMAT, root, "policy", "empty document");
    if (root->kind != BN_YAML_MAP)
        return fail(c, BN_ERR_FORMAT, root, NULL, "a policy is a YAML mapping, got %s", bn_yaml_kind_name(root));
    bn_status st = check_version(c, root);
    if (st != BN_OK) return st;
    const bn_yaml_node *val[N_TOP] = {0}, *keyn[N_TOP] = {0};
    for (size_t i = 0; i < root->n; i++) {
        const bn_yaml_node *kn = bn_yaml_key(root, i), *vn = bn_yaml_value(root, i);
        const char *name = bn_yaml_str(kn);
        char buf[48];
        if (!name) return fail(c, BN_ERR_FORMAT, kn, NULL, "top-level keys must be names, got %s", not_a_name(kn));
        int which = top_key_index(name);
        if (which < 0)
            return fail(c, BN_ERR_FORMAT, kn, excerpt(kn, buf),
                        "unknown top-level key (expected policy, name, description, numerics, floors, defaults, rules, "
                        "accept)");
        if (val[which])
            return fail(c, BN_ERR_FORMAT, kn, name, "duplicate key (first at line %d)", keyn[which]->line);
        val[which] = vn;
        keyn[which] = kn;
    }
    for (int i = 0; i < N_TOP && st == BN_OK; i++)
        if (val[i]) st = parse_top_entry(c, i, val[i], p);
    if (st == BN_OK && !val[T_NAME]) st = fail(c, BN_ERR_FORMAT, root, "name", "missing");
    return st;
}

#undef fail

void parity_policy_free(parity_policy *p) {
    if (!p) return;
    free(p->origin);
    free(p->name);
    free(p->description);
    for (size_t i = 0; i < p->n_numerics; i++) free(p->numerics[i]);
    free(p->numerics);
    for (size_t i = 0; i < p->n_accept; i++) free(p->accept[i]);
    free(p->accept);
    for (size_t i = 0; i < p->n_rules; i++) free(p->rules[i].glob);
    free(p->rules);
    free(p);
}

bn_status parity_policy_load_string(const char *text, size_t len, const char *origin, parity_policy **out,
                                    bn_error *err) {
    if (!out || (!text && len)) return bn_error_set(err, BN_ERR_INVALID, "parity_policy_load_string: NULL argument");
    *out = NULL;
    if (!origin) origin = "<policy>";
    bn_yaml_doc *doc;
    bn_status st = bn_yaml_parse(origin, text, len, PARITY_POLICY_MAX_BYTES, "policy", &doc, err);
    if (st != BN_OK) return st;
    parity_policy *p = calloc(1, sizeof *p);
    if (!p || !(p->origin = dup_str(origin))) {
        free(p);
        bn_yaml_free(doc);
        return bn_error_nomem(err, sizeof *p + strlen(origin) + 1, "%s: the policy", origin);
    }
    p->defaults = limits_unset();
    parse_ctx c = {doc, err};
    st = parse_root(&c, bn_yaml_root(doc), p);
    bn_yaml_free(doc);
    if (st == BN_OK && !p->description && !(p->description = dup_str("")))
        st = bn_error_nomem(err, 1, "%s: the policy's description", origin);
    if (st != BN_OK) {
        parity_policy_free(p);
        return st;
    }
    uint8_t digest[BN_SHA256_DIGEST_SIZE];
    bn_sha256_buffer(text, len, digest);
    bn_sha256_hex(digest, p->sha256);
    *out = p;
    return BN_OK;
}

bn_status parity_policy_load_file(const char *path, parity_policy **out, bn_error *err) {
    if (!path || !out) return bn_error_set(err, BN_ERR_INVALID, "parity_policy_load_file: NULL argument");
    *out = NULL;
    char *text;
    size_t size;
    bn_status s = bn_yaml_read_file(path, PARITY_POLICY_MAX_BYTES, "policy", &text, &size, err);
    if (s != BN_OK) return s;
    s = parity_policy_load_string(text, size, path, out, err);
    free(text);
    return s;
}

bn_status parity_policy_load_builtin(const char *name, parity_policy **out, bn_error *err) {
    const char *text = name ? parity_policy_builtin_text(name) : NULL;
    if (!text) {
        char names[256] = "";
        size_t n;
        const char *const *all = parity_policy_builtin_names(&n);
        for (size_t i = 0; i < n; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", all[i]);
        return bn_error_set(err, BN_ERR_NOT_FOUND, "no built-in policy '%s' (built-in: %s)", name ? name : "(null)",
                            names);
    }
    char origin[96];
    snprintf(origin, sizeof origin, "builtin:%s", name);
    return parity_policy_load_string(text, strlen(text), origin, out, err);
}

const char *parity_policy_name(const parity_policy *p) { return p->name; }
const char *parity_policy_description(const parity_policy *p) { return p->description; }
const char *parity_policy_origin(const parity_policy *p) { return p->origin; }
const char *parity_policy_sha256(const parity_policy *p) { return p->sha256; }
int parity_policy_accepts(const parity_policy *p, const char *equivalence) {
    for (size_t i = 0; i < p->n_accept; i++)
        if (equivalence && !strcmp(p->accept[i], equivalence)) return 1;
    return 0;
}

size_t parity_policy_numerics_count(const parity_policy *p) { return p->n_numerics; }

const char *parity_policy_numerics(const parity_policy *p, size_t i) {
    return i < p->n_numerics ? p->numerics[i] : NULL;
}

int parity_policy_calibrated_for(const parity_policy *p, const char *mode) {
    if (p->n_numerics == 0) return 1;
    for (size_t i = 0; i < p->n_numerics; i++)
        if (mode && !strcmp(p->numerics[i], mode)) return 1;
    return 0;
}

parity_limits parity_policy_resolve(const parity_policy *p, const char *tap_name) {
    parity_limits lim = p->defaults;
    for (size_t i = 0; tap_name && i < p->n_rules; i++) {
        if (!parity_glob_match(p->rules[i].glob, tap_name)) continue;
        limits_overlay(&lim, &p->rules[i].lim);
        lim.rule = p->rules[i].lim.rule;
        lim.rule_line = p->rules[i].lim.rule_line;
        break;
    }
    return lim;
}

/* ---- checking ---------------------------------------------------------------- */

static parity_check failed(const char *metric, double value, double limit) {
    parity_check r = {0, 0, metric, value, limit};
    return r;
}

/* The non-finite and bit-level checks, which are not a plain value ≤ limit. */
static int check_special(const parity_limits *lim, const parity_metrics *m, parity_check *out) {
    if (lim->allow_nan == 1) {
        if (m->nan_mismatch) return *out = failed("nan_mismatch", (double)m->nan_mismatch, 0), 1;
    } else if (m->nan_a + m->nan_b) {
        return *out = failed("nan_count", (double)(m->nan_a + m->nan_b), 0), 1;
    }
    if (m->inf_mismatch) return *out = failed("inf_mismatch", (double)m->inf_mismatch, 0), 1;
    if (lim->bit_identical == 1 && m->n_bitdiff)
        return *out = failed("bit_diff_count", (double)m->n_bitdiff, 0), 1;
    return 0;
}

static double metric_value(const key_def *k, const parity_metrics *m, const parity_logits_summary *lg) {
    if (k->src == SRC_TENSOR && k->value == offsetof(parity_metrics, ulp_max)) return (double)m->ulp_max;
    const char *base = k->src == SRC_TENSOR ? (const char *)m : (const char *)lg;
    double v;
    memcpy(&v, base + k->value, sizeof v);
    return v;
}

parity_check parity_policy_check(const parity_limits *lim, const parity_metrics *m,
                                 const parity_logits_summary *lg) {
    parity_check r = {1, 0, NULL, 0, 0};
    if (lim->skip == 1) {
        r.skipped = 1;
        return r;
    }
    if (m && check_special(lim, m, &r)) return r;
    for (size_t i = 0; i < N_KEYS; i++) {
        const key_def *k = &key_table[i];
        if (k->kind == K_FLAG || isnan(get_num(lim, k))) continue;
        if ((k->src == SRC_TENSOR && !m) || (k->src == SRC_LOGITS && !lg)) continue;
        double v = metric_value(k, m, lg), limit = get_num(lim, k);
        int is_min = k->kind == K_COSINE || k->kind == K_FRAC;
        int ok = is_min ? v >= limit : v <= limit; /* a NaN value fails either way */
        if (!ok) return failed(k->metric, v, limit);
    }
    return r;
}
