// ggml_nodes_dumper.cpp — records every ggml graph node of a bitnet.cpp or llama.cpp evaluation
// into a `layout: ggml-nodes` trace (docs/specs/ggml-nodes.md), through the public
// llama.cpp API only: a cb_eval callback observes each node after it is computed.
//
//   ggml_nodes_dumper -m MODEL.gguf --tokens 509,12,300 [--decode N] [--threads N] [--ctx N]
//                     [--kv-type f16|f32] [--last-only] -o OUT.npz
//
// e0 = the prompt at positions 0..T-1 (logits for every token unless --last-only), e1..eN =
// greedy single-token decode steps; then, on a fresh context without the callback, the 16
// greedy tokens for meta.yaml. Build: see README.md (CMake probes which API generation the
// checkout has and writes dumper_config.h).
//
// API generations handled (llama.h, 2024 → 2026):
//   2024 (bitnet.cpp's bundled fork)     2025+ (upstream)
//   llama_load_model_from_file           llama_model_load_from_file
//   llama_new_context_with_model         llama_init_from_model
//   llama_free_model                     llama_model_free
//   llama_n_vocab(model)                 llama_vocab_n_tokens(llama_model_get_vocab(model))
//   ctx_params.flash_attn (bool)         ctx_params.flash_attn_type (enum; default AUTO!)
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(__has_include)
#if __has_include("dumper_config.h")
#include "dumper_config.h"
#endif
#endif

// Without CMake's probes, assume the current upstream API; -DDUMPER_HAVE_...=0 selects the 2024 one.
#ifndef DUMPER_HAVE_MODEL_LOAD_FROM_FILE
#define DUMPER_HAVE_MODEL_LOAD_FROM_FILE 1
#endif
#ifndef DUMPER_HAVE_INIT_FROM_MODEL
#define DUMPER_HAVE_INIT_FROM_MODEL 1
#endif
#ifndef DUMPER_HAVE_MODEL_FREE
#define DUMPER_HAVE_MODEL_FREE 1
#endif
#ifndef DUMPER_HAVE_VOCAB_API
#define DUMPER_HAVE_VOCAB_API 1
#endif
#ifndef DUMPER_HAVE_FLASH_ATTN_TYPE
#define DUMPER_HAVE_FLASH_ATTN_TYPE 1
#endif
#ifndef DUMPER_HAVE_FLASH_ATTN_BOOL
#define DUMPER_HAVE_FLASH_ATTN_BOOL 0
#endif
#ifndef DUMPER_BATCH_OUTPUT_FIELD  // 1 where llama_batch names its per-token flags `output`
#define DUMPER_BATCH_OUTPUT_FIELD 0
#endif
#ifndef DUMPER_DEFAULT_PRODUCER
#define DUMPER_DEFAULT_PRODUCER "llama.cpp"
#endif
#ifndef DUMPER_DEFAULT_SOURCE
#define DUMPER_DEFAULT_SOURCE "unknown (pass --source 'REPO COMMIT (DATE)')"
#endif

#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

#include "ggml_nodes_format.h"

#if DUMPER_BATCH_OUTPUT_FIELD
#define BATCH_WANTS_OUTPUT(b) (b).output
#else
#define BATCH_WANTS_OUTPUT(b) (b).logits
#endif

static const char kUsage[] =
    "usage: ggml_nodes_dumper -m MODEL.gguf --tokens ID,ID,... -o OUT.npz [options]\n\n"
    "Evaluates the prompt (e0) and N greedy decode steps (e1..eN) with a graph callback that copies\n"
    "every ggml node to float32, and writes a bitparity ggml-nodes trace.\n\n"
    "  --decode N        greedy single-token decode steps to record (default 2)\n"
    "  --threads N       CPU threads (default 2)\n"
    "  --ctx N           context size (default 256)\n"
    "  --kv-type T       KV cache type for K and V: f16 (default), f32, bf16, q8_0 ...\n"
    "  -ctk T, -ctv T    K or V cache type alone\n"
    "  --last-only       e0 requests only the last position's logits (as llama-cli does)\n"
    "  --greedy N        greedy tokens recorded in meta.yaml (default 16)\n"
    "  --producer NAME   producer.name (default " DUMPER_DEFAULT_PRODUCER "; bitparity picks its tap\n"
    "                    map by it: bitnet.cpp or llama.cpp)\n"
    "  --source TEXT     producer.source (default from the checkout at configure time)\n"
    "  --ngl N           layers offloaded to a GPU (default 0: CPU, like the shared traces)\n\n"
    "Tokens are used as given (no BOS added).\n";

struct Options {
    std::string model, out, producer = DUMPER_DEFAULT_PRODUCER, source = DUMPER_DEFAULT_SOURCE;
    std::vector<llama_token> tokens;
    int decode = 2, threads = 2, n_ctx = 256, greedy = 16, ngl = 0;
    std::string type_k = "f16", type_v = "f16";
    bool last_only = false;
};

// What the callback needs between nodes of one evaluation.
struct Recorder {
    gnodes::TraceWriter *writer = nullptr;  // the trace being written
    int64_t seq = 0;                        // graph-order number of the next node
    std::unordered_map<const ggml_tensor *, std::string> given;  // names given to unnamed nodes
    std::vector<uint8_t> staging;           // device → host copy of one node
    std::string err;                        // first failure; recording stops there

    void begin() {
        seq = 0;
        given.clear();
    }
    std::string name_of(const ggml_tensor *t) const {
        if (!t) return "-";
        if (t->name[0]) return t->name;
        auto it = given.find(t);
        return it != given.end() ? it->second : "(unnamed)";
    }
    bool record(ggml_tensor *t);
};

static gnodes::Elem elem_of(ggml_type type) {
    switch (type) {
    case GGML_TYPE_F32: return gnodes::Elem::F32;
    case GGML_TYPE_F16: return gnodes::Elem::F16;
    case GGML_TYPE_BF16: return gnodes::Elem::BF16;
    case GGML_TYPE_I32: return gnodes::Elem::I32;
    default: return gnodes::Elem::Unsupported;
    }
}

bool Recorder::record(ggml_tensor *t) {
    const int64_t my_seq = seq++;
    // Unnamed nodes become node_<seq>; later consumers list them under that name as src0/src1.
    if (!t->name[0]) given[t] = gnodes::node_name(t->name, my_seq);
    gnodes::Node n;
    n.name = name_of(t);
    n.op = ggml_op_desc(t);
    n.type = ggml_type_name(t->type) ? ggml_type_name(t->type) : "?";
    n.elem = elem_of(t->type);
    for (int i = 0; i < 4; i++) n.ne[i] = t->ne[i], n.nb[i] = t->nb[i];
    n.src0 = name_of(t->src[0]);
    n.src1 = name_of(t->src[1]);
    n.data = static_cast<const uint8_t *>(t->data);
    if (!t->data) n.elem = gnodes::Elem::Unsupported, n.type += " (no data)";
    if (n.elem != gnodes::Elem::Unsupported && t->buffer && !ggml_backend_buffer_is_host(t->buffer)) {
        // ggml_nbytes spans first to last element, so strided views come over whole.
        const size_t bytes = ggml_nbytes(t);
        staging.resize(bytes);
        ggml_backend_tensor_get(t, staging.data(), 0, bytes);
        n.data = staging.data();
    }
    return writer->add_node(my_seq, n, &err);
}

// ask=true: "do you want this node?" — yes, every one, so the scheduler computes the graph one
// node at a time and each view shows memory as it is at that point. ask=false: the node is
// computed; returning false would stop the rest of the graph, which we do only after a failure.
static bool on_eval(ggml_tensor *t, bool ask, void *user_data) {
    Recorder *r = static_cast<Recorder *>(user_data);
    if (ask) return true;
    if (!r->err.empty() || !r->writer) return r->err.empty();
    return r->record(t);
}

// --- llama.cpp calls that changed names ---------------------------------------------------
static llama_model *load_model(const Options &o) {
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = o.ngl;
#if DUMPER_HAVE_MODEL_LOAD_FROM_FILE
    return llama_model_load_from_file(o.model.c_str(), mp);
#else
    return llama_load_model_from_file(o.model.c_str(), mp);
#endif
}

static void free_model(llama_model *m) {
#if DUMPER_HAVE_MODEL_FREE
    llama_model_free(m);
#else
    llama_free_model(m);
#endif
}

static int32_t vocab_size(const llama_model *m) {
#if DUMPER_HAVE_VOCAB_API
    return llama_vocab_n_tokens(llama_model_get_vocab(m));
#else
    return llama_n_vocab(m);
#endif
}

static bool parse_type(const std::string &s, ggml_type *out) {
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const char *name = ggml_type_name(static_cast<ggml_type>(t));
        if (name && s == name) return *out = static_cast<ggml_type>(t), true;
    }
    return false;
}

// rec == nullptr: a plain context (the greedy run).
static llama_context *make_context(llama_model *model, const Options &o, Recorder *rec, std::string *err) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = static_cast<uint32_t>(o.n_ctx);
    // One ubatch holds the whole prompt: a split prompt would run the graph twice per decode.
    cp.n_batch = cp.n_ubatch = static_cast<uint32_t>(o.n_ctx);
    cp.n_threads = cp.n_threads_batch = o.threads;
    parse_type(o.type_k, &cp.type_k);  // validated in main
    parse_type(o.type_v, &cp.type_v);
    // The shared traces use the plain attention graph (kq, soft_max, kqv nodes).
#if DUMPER_HAVE_FLASH_ATTN_TYPE
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
#elif DUMPER_HAVE_FLASH_ATTN_BOOL
    cp.flash_attn = false;
#endif
    cp.cb_eval = rec ? on_eval : nullptr;
    cp.cb_eval_user_data = rec;
#if DUMPER_HAVE_INIT_FROM_MODEL
    llama_context *ctx = llama_init_from_model(model, cp);
#else
    llama_context *ctx = llama_new_context_with_model(model, cp);
#endif
    if (!ctx) *err = "cannot create a llama context (n_ctx " + std::to_string(o.n_ctx) + ")";
    return ctx;
}

// Decodes `toks` at positions p0.. and copies the requested logits rows to *logits
// ([n_rows, n_vocab]: every token when all_logits, else the last).
static bool decode(llama_context *ctx, const std::vector<llama_token> &toks, int32_t p0, bool all_logits,
                   int32_t n_vocab, std::vector<float> *logits, std::string *err) {
    const int32_t n = static_cast<int32_t>(toks.size());
    llama_batch b = llama_batch_init(n, 0, 1);
    for (int32_t i = 0; i < n; i++) {
        b.token[i] = toks[i];
        b.pos[i] = p0 + i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        BATCH_WANTS_OUTPUT(b)[i] = all_logits || i == n - 1;
    }
    b.n_tokens = n;
    const int rc = llama_decode(ctx, b);
    llama_batch_free(b);
    if (rc != 0) {
        *err = "llama_decode failed (" + std::to_string(rc) + ") at p0 " + std::to_string(p0);
        return false;
    }
    logits->clear();
    for (int32_t i = all_logits ? 0 : n - 1; i < n; i++) {
        const float *row = llama_get_logits_ith(ctx, i);
        if (!row) {
            *err = "no logits for batch row " + std::to_string(i);
            return false;
        }
        logits->insert(logits->end(), row, row + n_vocab);
    }
    return true;
}

// Index of the largest of the last row; ties go to the lowest id.
static llama_token argmax_last(const std::vector<float> &logits, int32_t n_vocab) {
    const float *row = logits.data() + logits.size() - static_cast<size_t>(n_vocab);
    return static_cast<llama_token>(std::max_element(row, row + n_vocab) - row);
}

// --- the run ------------------------------------------------------------------------------
static bool record_trace(llama_model *model, const Options &o, int32_t n_vocab, gnodes::TraceWriter *w,
                         std::vector<llama_token> *decoded, std::string *err) {
    Recorder rec;
    rec.writer = w;
    llama_context *ctx = make_context(model, o, &rec, err);
    if (!ctx) return false;
    std::vector<float> logits;
    std::vector<llama_token> toks = o.tokens;
    int32_t p0 = 0;
    bool ok = true;
    for (int k = 0; ok && k <= o.decode; k++) {
        const bool all = k == 0 && !o.last_only;
        w->begin_eval(std::vector<int32_t>(toks.begin(), toks.end()), p0);
        rec.begin();
        ok = decode(ctx, toks, p0, all, n_vocab, &logits, err);
        if (ok && !rec.err.empty()) *err = rec.err, ok = false;
        if (ok && rec.seq == 0) *err = "the eval callback saw no node (cb_eval ignored?)", ok = false;
        if (ok) ok = w->add_logits(logits.data(), static_cast<int64_t>(logits.size() / n_vocab), n_vocab, err);
        if (ok) ok = w->end_eval(err);
        if (!ok) break;
        fprintf(stderr, "ggml_nodes_dumper: e%d: %zu token(s) at p0 %d, %lld nodes\n", k, toks.size(), p0,
                static_cast<long long>(rec.seq));
        p0 += static_cast<int32_t>(toks.size());
        toks.assign(1, argmax_last(logits, n_vocab));
        if (k < o.decode) decoded->push_back(toks[0]);
    }
    llama_free(ctx);
    return ok;
}

static bool greedy_tokens(llama_model *model, const Options &o, int32_t n_vocab, std::vector<int32_t> *out,
                          std::string *err) {
    llama_context *ctx = make_context(model, o, nullptr, err);
    if (!ctx) return false;
    std::vector<float> logits;
    std::vector<llama_token> toks = o.tokens;
    int32_t p0 = 0;
    bool ok = true;
    while (ok && static_cast<int>(out->size()) < o.greedy) {
        ok = decode(ctx, toks, p0, p0 == 0 && !o.last_only, n_vocab, &logits, err);
        if (!ok) break;
        p0 += static_cast<int32_t>(toks.size());
        toks.assign(1, argmax_last(logits, n_vocab));
        out->push_back(toks[0]);
    }
    llama_free(ctx);
    return ok;
}

// --- arguments ----------------------------------------------------------------------------
static bool parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    return *out = static_cast<int>(v), true;
}

static bool parse_tokens(const std::string &s, std::vector<llama_token> *out) {
    size_t at = 0;
    while (at <= s.size()) {
        const size_t comma = std::min(s.find(',', at), s.size());
        int v;
        if (!parse_int(s.substr(at, comma - at).c_str(), 0, 0x7FFFFFFF, &v)) return false;
        out->push_back(v);
        at = comma + 1;
    }
    return !out->empty();
}

static int usage_error(const std::string &msg) {
    fprintf(stderr, "ggml_nodes_dumper: %s\n\n%s", msg.c_str(), kUsage);
    return 2;
}

static int parse_args(int argc, char **argv, Options *o) {
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") return fputs(kUsage, stdout), 1;
        if (a == "--last-only") {
            o->last_only = true;
            continue;
        }
        if (i + 1 >= argc) return usage_error("option " + a + " needs a value");
        const char *v = argv[++i];
        bool ok = true;
        if (a == "-m" || a == "--model") o->model = v;
        else if (a == "-o" || a == "--output") o->out = v;
        else if (a == "--tokens") ok = parse_tokens(v, &o->tokens);
        else if (a == "--decode") ok = parse_int(v, 0, 1000000, &o->decode);
        else if (a == "--threads" || a == "-t") ok = parse_int(v, 1, 4096, &o->threads);
        else if (a == "--ctx" || a == "-c") ok = parse_int(v, 1, 1 << 24, &o->n_ctx);
        else if (a == "--greedy") ok = parse_int(v, 0, 1000000, &o->greedy);
        else if (a == "--ngl") ok = parse_int(v, 0, 100000, &o->ngl);
        else if (a == "--kv-type") o->type_k = o->type_v = v;
        else if (a == "-ctk" || a == "--cache-type-k") o->type_k = v;
        else if (a == "-ctv" || a == "--cache-type-v") o->type_v = v;
        else if (a == "--producer") o->producer = v;
        else if (a == "--source") o->source = v;
        else return usage_error("unknown option " + a);
        if (!ok) return usage_error("bad value '" + std::string(v) + "' for " + a);
    }
    if (o->model.empty() || o->out.empty() || o->tokens.empty()) return usage_error("-m, --tokens and -o are required");
    const long need = static_cast<long>(o->tokens.size()) + std::max(o->decode, o->greedy);
    if (need > o->n_ctx) return usage_error("--ctx " + std::to_string(o->n_ctx) + " is too small for the prompt plus " +
                                            std::to_string(std::max(o->decode, o->greedy)) + " generated tokens");
    return 0;
}

static std::string base_name(const std::string &p) {
    const size_t s = p.find_last_of('/');
    return s == std::string::npos ? p : p.substr(s + 1);
}

int main(int argc, char **argv) {
    Options o;
    if (int rc = parse_args(argc, argv, &o)) return rc == 1 ? 0 : rc;
    gnodes::Meta meta;
    std::string err;
    if (!gnodes::sha256_file(o.model, &meta.model_sha256, &err)) return fprintf(stderr, "ggml_nodes_dumper: %s\n", err.c_str()), 2;

    llama_backend_init();
    ggml_type kv_type;
    if (!parse_type(o.type_k, &kv_type) || !parse_type(o.type_v, &kv_type))
        return usage_error("unknown KV cache type '" + (parse_type(o.type_k, &kv_type) ? o.type_v : o.type_k) +
                           "' (ggml type names: f16, f32, bf16, q8_0, ...)");
    llama_model *model = load_model(o);
    if (!model) return fprintf(stderr, "ggml_nodes_dumper: cannot load %s\n", o.model.c_str()), 2;
    const int32_t n_vocab = vocab_size(model);
    for (llama_token t : o.tokens)
        if (t >= n_vocab) {
            fprintf(stderr, "ggml_nodes_dumper: token %d is outside the vocabulary (%d)\n", t, n_vocab);
            free_model(model);
            return 2;
        }

    gnodes::TraceWriter w;
    std::vector<llama_token> decoded;
    const bool opened = w.open(o.out, &err);
    bool ok = opened && record_trace(model, o, n_vocab, &w, &decoded, &err) &&
              greedy_tokens(model, o, n_vocab, &meta.greedy_tokens, &err);
    if (ok) {
        // The trace's decode steps and the plain run must agree: the callback changes how the
        // graph is scheduled, never what it computes.
        for (size_t i = 0; i < decoded.size() && i < meta.greedy_tokens.size(); i++)
            if (decoded[i] != meta.greedy_tokens[i])
                fprintf(stderr, "ggml_nodes_dumper: warning: traced step e%zu fed token %d, the plain greedy run %d\n",
                        i + 1, decoded[i], meta.greedy_tokens[i]);
        meta.producer_name = o.producer;
        meta.producer_source = o.source;
        meta.producer_tool = "graph-callback dumper (cb_eval), every node copied to float32 "
                             "(bitparity reference/dumpers/ggml_nodes_dumper)";
        meta.model_file = base_name(o.model);
        meta.kv_type_k = o.type_k;
        meta.kv_type_v = o.type_v;
        meta.threads = o.threads;
        meta.n_ctx = o.n_ctx;
        meta.logits_all = !o.last_only;
#if DUMPER_HAVE_FLASH_ATTN_TYPE || DUMPER_HAVE_FLASH_ATTN_BOOL
        meta.flash_attn = 0;
#endif
        ok = w.finish(meta, &err);
    }
    free_model(model);
    llama_backend_free();
    if (!ok) {
        if (opened) remove(o.out.c_str());  // no half trace without meta.yaml left behind
        fprintf(stderr, "ggml_nodes_dumper: %s\n", err.c_str());
        return opened ? 3 : 2;
    }
    fprintf(stderr, "ggml_nodes_dumper: wrote %s: %lld nodes, %zu skipped, %.1f MiB; greedy:", o.out.c_str(),
            static_cast<long long>(w.nodes_written()), w.skipped().size(), w.bytes_written() / 1048576.0);
    for (int32_t t : meta.greedy_tokens) fprintf(stderr, " %d", t);
    fprintf(stderr, "\n");
    return 0;
}
