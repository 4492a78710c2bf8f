/* record.c — engine → canonical trace (see record.h). */
#include "parity/record.h"

#include <stdlib.h>
#include <string.h>

#include "bitnet/quant.h"
#include "bitnet/sampler.h"
#include "bitnet/session.h"
#include "bitnet/sha256.h"
#include "parity/trace.h"


/* The projections' weight type, lower case as in file names ("i2_s"). */
static const char *weight_type_name(const bn_model *m, char *buf, size_t size) {
    return m->hp.n_layer > 0 ? bn_type_name_lower(m->layers[0].w[BN_PROJ_Q].type, buf, size) : "none";
}

/* The evaluations as they are run: the prompt then greedy steps, or the
 * followed list. */
typedef struct record_run {
    const parity_record_opts *o;
    parity_eval *evals;  /* [n_evals]: what was evaluated */
    int32_t *steps;      /* [n_evals]: the greedy token after each evaluation */
    int64_t n_evals, V;
    parity_trace_writer *w;
    int64_t k;           /* the evaluation running, for progress */
    int64_t n_layer;
    uint64_t bytes;      /* tap bytes written so far, for progress */
} record_run;

/* The observe hook: each tap goes to the file the moment it fires. */
static bn_status write_tap(void *user, bn_tap *tap, bn_error *err) {
    record_run *r = user;
    uint64_t n = tap->dtype == BN_TAP_I8 ? 1 : 4;
    for (int d = 0; d < tap->ndim; d++) n *= (uint64_t)tap->shape[d];
    r->bytes += n;
    return parity_trace_writer_add_tap(r->w, tap->eval, tap->name, tap->dtype == BN_TAP_I8 ? NPZ_I8 : NPZ_F32,
                                       tap->shape, tap->ndim, tap->data, err);
}

/* The engine's per-block report, as layers of the whole recording. */
static void record_progress(void *user, const bn_progress *p) {
    const record_run *r = user;
    const bn_progress all = {"recording", "layers", r->k * r->n_layer + p->done, r->n_evals * r->n_layer, r->bytes};
    bn_progress_report(&r->o->progress, &all);
}

static bn_status record_step(void *user, int64_t k, const bn_ctx *c, bn_session_step *step, bn_error *err) {
    record_run *r = user;
    const parity_record_opts *o = r->o;
    if (k > 0) r->steps[k - 1] = bn_argmax(bn_ctx_logits(c) + (r->evals[k - 1].n_tokens - 1) * r->V, r->V);
    r->k = k;
    if (k == r->n_evals) return BN_OK;
    const int32_t *toks = o->follow ? o->follow[k].tokens : k == 0 ? o->tokens : &r->steps[k - 1];
    const int64_t n = o->follow ? o->follow[k].n_tokens : k == 0 ? o->n_tokens : 1;
    if (o->follow && o->follow[k].p0 != bn_ctx_n_past(c))
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "evaluation e%lld starts at position %lld, not at %lld: only "
                            "consecutive evaluations can be followed", (long long)k, (long long)o->follow[k].p0,
                            (long long)bn_ctx_n_past(c));
    r->evals[k] = (parity_eval){.tokens = toks, .n_tokens = n, .p0 = bn_ctx_n_past(c)};
    *step = (bn_session_step){.tokens = toks, .n_tokens = n};
    return BN_OK;
}

/* Records into o->out_path, or in memory when it is NULL; with `out` the
 * finished trace is returned open. */
static bn_status record(const bn_model *m, const parity_record_opts *o, parity_trace **out, bn_error *err) {
    if (!o->follow && o->n_tokens <= 0) return bn_error_set(err, BN_ERR_INVALID, "trace: the prompt is empty");
    if (!o->follow && (o->n_decode < 0 || o->n_decode > PARITY_RECORD_MAX_DECODE))
        return bn_error_set(err, BN_ERR_INVALID, "trace: --decode %lld: must be 0..%d", (long long)o->n_decode,
                            PARITY_RECORD_MAX_DECODE);
    if (o->follow && o->n_follow <= 0) return bn_error_set(err, BN_ERR_INVALID, "trace: nothing to follow");
    const int64_t n_evals = o->follow ? o->n_follow : 1 + o->n_decode;
    uint8_t digest[BN_SHA256_DIGEST_SIZE];
    char sha[BN_SHA256_HEX_SIZE], wt[16];
    bn_tap_set *taps = NULL;
    parity_trace_writer *w = NULL;
    record_run run = {.o = o, .n_evals = n_evals, .V = m->hp.n_vocab, .n_layer = m->hp.n_layer,
                      .evals = calloc((size_t)n_evals, sizeof *run.evals),
                      .steps = calloc((size_t)n_evals, sizeof *run.steps)};
    bn_status st = run.evals && run.steps ? BN_OK
                                          : bn_error_nomem(err, (size_t)n_evals * (sizeof *run.evals + sizeof *run.steps),
                                                           "trace: the list of %lld evaluations", (long long)n_evals);
    if (!st) st = bn_sha256_file(o->model_path, o->cancel, digest, err);
    if (!st) st = bn_tap_set_create(m->hp.n_layer, o->taps, &taps, err);
    if (!st) st = bn_cancel_check(o->cancel, err);
    const npz_compression comp = o->compress ? NPZ_DEFLATE_FAST : NPZ_STORED;
    if (!st) st = o->out_path ? parity_trace_writer_open(o->out_path, comp, &w, err)
                              : parity_trace_writer_open_memory(PARITY_RECORD_MEMORY_NAME, comp, &w, err);
    if (!st) parity_trace_writer_set_cancel(w, o->cancel);
    bn_session_params sp = {.ctx = bn_ctx_params_init(), .step = record_step, .user = &run};
    for (int64_t k = 0; k < n_evals; k++) sp.n_positions += o->follow ? o->follow[k].n_tokens : k == 0 ? o->n_tokens : 1;
    sp.ctx.n_threads = o->n_threads;
    sp.ctx.numerics = o->numerics;
    sp.ctx.kv_type = o->kv_type;
    sp.ctx.v_type = o->v_type;
    sp.fault = o->fault;
    sp.ctx.cancel = o->cancel;
    sp.ctx.observe = taps;
    sp.ctx.observe_fn = write_tap;
    sp.ctx.observe_user = &run;
    run.w = w;
    if (o->progress.fn) sp.ctx.progress = (bn_progress_sink){record_progress, &run};
    if (!st) st = bn_session_run(m, &sp, err);
    if (!st) record_progress(&run, &(bn_progress){.done = 0}); /* k = n_evals: all layers done */
    if (!st) {
        bn_sha256_hex(digest, sha);
        const parity_trace_meta meta = {
            .producer_name = "bitparity", .producer_version = BITPARITY_VERSION, .producer_commit = BITPARITY_COMMIT,
            .model_path = o->model_path, .model_sha256 = sha, .model_arch = bn_arch_name(m->hp.arch),
            .model_weight_type = weight_type_name(m, wt, sizeof wt),
            .numerics = bn_numerics_name(o->numerics), .threads = o->n_threads,
            .kv_cache = bn_kv_cache_name(o->kv_type, o->v_type, o->numerics),
            .lm_head = bn_model_lm_head_override(m),
            .fault = o->fault == BN_FAULT_NONE ? NULL : bn_fault_name(o->fault),
            .evals = run.evals, .n_evals = n_evals, .greedy_tokens = run.steps, .n_greedy = n_evals};
        st = out ? parity_trace_writer_finish_open(w, &meta, out, err) : parity_trace_writer_finish(w, &meta, err);
        w = NULL;
    }
    parity_trace_writer_abort(w);
    bn_tap_set_free(taps);
    free(run.evals), free(run.steps);
    return st;
}

bn_status parity_record(const bn_model *m, const parity_record_opts *o, bn_error *err) {
    if (!o->out_path) return bn_error_set(err, BN_ERR_INVALID, "trace: no output path");
    return record(m, o, NULL, err);
}

bn_status parity_record_open(const bn_model *m, const parity_record_opts *o, parity_trace **out, bn_error *err) {
    *out = NULL;
    return record(m, o, out, err);
}
