/* driver.c — trace-or-read → map → compare → hints → replay → receipt; see
 * driver.h. */
#include "parity/driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bitnet/clock.h"
#include "bitnet/sha256.h"
#include "parity/hints.h"
#include "parity/record.h"

const char *parity_driver_default_numerics(const parity_trace *reference) {
    const char *producer = parity_trace_get(reference, "producer.name");
    const char *numerics = parity_trace_get(reference, "settings.numerics");
    if (numerics) return numerics;
    if (producer && !strncmp(producer, "bitnet.cpp", 10)) return "ggml-compat";
    return producer && !strncmp(producer, "llama.cpp", 9) ? "llama.cpp-compat" : "f32";
}

void parity_driver_run_free(parity_driver_run *r) {
    if (!r) return;
    parity_receipt_free(r->receipt);
    parity_replay_result_free(r->replay);
    parity_arbiter_result_free(r->arbiter);
    parity_compare_result_free(r->result);
    bn_pool_destroy(r->pool);
    parity_policy_free(r->policy);
    for (int i = 0; i < 2; i++) parity_tapmap_free(r->map[i]), parity_trace_close(r->trace[i]);
    free(r);
}

static bn_status load_policy(const parity_driver_opts *o, parity_driver_run *r, bn_error *err) {
    if (!o->policy) {
        char why[256];
        const char *name = parity_compare_default_policy(r->trace[0], r->trace[1], why, sizeof why);
        snprintf(r->policy_choice, sizeof r->policy_choice, "auto: %s", why);
        return parity_policy_load_builtin(name, &r->policy, err);
    }
    snprintf(r->policy_choice, sizeof r->policy_choice, "--policy %s", o->policy);
    /* A bare word that is no file is meant as a built-in name: say which exist. */
    if (parity_policy_builtin_text(o->policy) || (!strchr(o->policy, '/') && access(o->policy, F_OK)))
        return parity_policy_load_builtin(o->policy, &r->policy, err);
    return parity_policy_load_file(o->policy, &r->policy, err);
}

/* The engine runs exactly the reference's evaluations into record_path (or
 * memory) and the trace comes back open as the subject. */
static bn_status record_subject(const parity_driver_opts *o, const bn_model *m, const parity_trace *ref,
                                parity_trace **subject, bn_error *err) {
    int64_t n;
    parity_eval *evals;
    bn_status st = parity_trace_evals(ref, &evals, &n, err);
    if (st) return st;
    const char *numerics = o->numerics ? o->numerics : parity_driver_default_numerics(ref);
    parity_record_opts ro = {.model_path = o->model, .follow = evals, .n_follow = n, .taps = o->taps,
                             .n_threads = o->threads, .out_path = o->record_path, .cancel = o->cancel,
                             .progress = o->progress};
    if (!bn_numerics_parse(numerics, &ro.numerics))
        st = bn_error_set(err, BN_ERR_INVALID, "--numerics '%s': expected ggml-compat, f32 or llama.cpp-compat", numerics);
    if (!st && o->fault && !bn_fault_parse(o->fault, &ro.fault))
        st = bn_error_set(err, BN_ERR_INVALID, "--fault '%s': unknown fault", o->fault);
    /* the reference's cache type, when it says one (llama.cpp runs f16 unless told otherwise) */
    const char *kv = o->kv_cache ? o->kv_cache : parity_trace_get(ref, "settings.kv_cache");
    if (!st && kv && !bn_kv_type_parse(kv, &ro.kv_type, &ro.v_type) && o->kv_cache)
        st = bn_error_set(err, BN_ERR_INVALID, "--kv-type '%s': expected f16, f32 or K,V (f32,f16)", kv);
    if (!st) st = parity_record_open(m, &ro, subject, err);
    free(evals);
    return st;
}

/* The reference's settings.lm_head (a trace recorded with --lm-head q8_0):
 * the engine runs with the same requantized lm_head, so that the two agree
 * bit for bit as they would otherwise. A type it cannot make is an error,
 * never a silent mismatch. */
static bn_status follow_lm_head(const parity_driver_opts *o, bn_model *m, const parity_trace *ref, bn_error *err) {
    const char *lm = parity_trace_lm_head(ref);
    uint32_t type = 0;
    if (!bn_model_lm_head_type_parse(lm, &type))
        return bn_error_set(err, BN_ERR_UNSUPPORTED,
                            "%s: settings.lm_head '%s': the engine requantizes an lm_head to q8_0 only", o->reference,
                            lm);
    return type ? bn_model_requantize_lm_head(m, type, o->threads, err) : BN_OK;
}

/* Where a model the driver evaluates lives: read into memory unless asked
 * to map it (an evaluation streams every weight per token, faster from
 * anonymous memory: bitnet/gguf.h); a model only read for hints is mapped. */
static bn_gguf_load eval_placement(const parity_driver_opts *o) {
    return o->map_model ? BN_GGUF_LOAD_MMAP : BN_GGUF_LOAD_MEMORY;
}

/* Both traces (a recording follows the reference, so it comes second),
 * their maps, the policy and the pool. */
static bn_status open_all(const parity_driver_opts *o, parity_driver_run *r, bn_model **m, bn_error *err) {
    const double t0 = bn_clock_seconds();
    bn_status st = o->subject ? parity_trace_open(o->subject, &r->trace[0], err) : BN_OK;
    if (!st) st = parity_trace_open(o->reference, &r->trace[1], err);
    if (!st && !o->subject) {
        const double t_record = bn_clock_seconds();
        st = bn_model_load_with(o->model, eval_placement(o), m, err);
        if (!st) st = follow_lm_head(o, *m, r->trace[1], err);
        if (!st) st = record_subject(o, *m, r->trace[1], &r->trace[0], err);
        r->t_open -= bn_clock_seconds() - t_record; /* recording is not opening */
    }
    if (!st) st = parity_tapmap_for_trace(r->trace[0], &r->map[0], err);
    if (!st) st = o->map ? parity_tapmap_load(o->map, &r->map[1], err) : parity_tapmap_for_trace(r->trace[1], &r->map[1], err);
    if (!st) st = load_policy(o, r, err);
    if (!st) st = bn_pool_create(o->threads, &r->pool, err);
    r->t_open += bn_clock_seconds() - t0;
    return st;
}

/* Before any work: a replay must be able to speak for the subject
 * (parity_replay_applies). The model file is hashed only when the subject
 * trace recorded a digest to hold it against; a recording is of o->model. */
static bn_status check_replay(const parity_driver_opts *o, const parity_driver_run *r, char sha[BN_SHA256_HEX_SIZE],
                              bn_error *err) {
    sha[0] = '\0';
    if (!o->replay || !o->subject) return BN_OK;
    if (parity_trace_get(r->trace[0], "model.sha256")) {
        uint8_t digest[BN_SHA256_DIGEST_SIZE];
        bn_status st = bn_sha256_file(o->model, o->cancel, digest, err);
        if (st) return st;
        bn_sha256_hex(digest, sha);
    }
    return parity_replay_applies(r->trace[0], sha[0] ? sha : NULL, err);
}

/* Hints (an equivalence the policy accepts turns the verdict into a pass),
 * and with replay the engine re-run that says where errors are born. */
static bn_status localize(const parity_driver_opts *o, parity_driver_run *r, bn_model **m, const char *model_sha,
                          bn_error *err) {
    parity_tapview *v[2] = {NULL, NULL};
    bn_model *ref_model = NULL;
    bn_status st = parity_tapview_open(r->trace[0], r->map[0], &v[0], err);
    if (!st) st = parity_tapview_open(r->trace[1], r->map[1], &v[1], err);
    if (!st && o->model && !*m && !r->result->pass) /* a replay evaluates it */
        st = bn_model_load_with(o->model, o->replay ? eval_placement(o) : BN_GGUF_LOAD_MMAP, m, err);
    if (!st && o->reference_model && !r->result->pass) st = bn_model_load(o->reference_model, &ref_model, err);
    if (!st) st = parity_hints_find(r->result, v[0], v[1], *m, ref_model, err);
    if (!st) parity_hints_accept(r->result, r->policy);
    if (!st && o->arbiter && !r->result->pass && r->result->first.found && !r->result->tokenization_mismatch)
        st = parity_arbiter_run(o->arbiter, r->result, v[0], v[1], *m, o->model, NULL, &r->arbiter, err);
    bn_model_free(ref_model);
    if (!st && o->replay && !r->result->pass && !r->result->tokenization_mismatch) {
        const parity_replay_opts ro = {.model = *m, .n_threads = bn_pool_size(r->pool), .mode = o->replay_mode,
                                       .cancel = o->cancel, .model_sha256 = model_sha};
        st = parity_replay(r->result, v[0], v[1], r->policy, &ro, &r->replay, err);
    }
    parity_tapview_free(v[0]);
    parity_tapview_free(v[1]);
    return st;
}

/* The receipt names the subject's model file's facts (hyper-parameters,
 * tensor types, tokenizer hash) whenever a model was given: a compare with
 * -m loads it here if hints and replay did not need it. */
static bn_status build_receipt(const parity_driver_opts *o, parity_driver_run *r, bn_model **m, bn_error *err) {
    bn_status st = o->model && !*m ? bn_model_load(o->model, m, err) : BN_OK;
    if (st) return st;
    const parity_receipt_storage storage =
        o->subject ? PARITY_STORAGE_FILE : o->record_path ? PARITY_STORAGE_KEPT : PARITY_STORAGE_MEMORY;
    const parity_receipt_input in = {r->trace[0], r->trace[1], r->map[0], r->map[1], r->policy, r->policy_choice,
                                     r->result, bn_pool_size(r->pool), bn_pool_simd(r->pool), 1, r->pool, r->t_open,
                                     r->replay, o->model, o->cancel, r->arbiter, *m, storage};
    return parity_receipt_build(&in, &r->receipt, err);
}

bn_status parity_driver_run_job(const parity_driver_opts *o, parity_driver_run **out, bn_error *err) {
    *out = NULL;
    if (!o->reference) return bn_error_set(err, BN_ERR_INVALID, "parity driver: no reference trace");
    if (!o->subject && !o->model)
        return bn_error_set(err, BN_ERR_INVALID, "parity driver: recording the subject needs a model");
    if (o->replay && !o->model) return bn_error_set(err, BN_ERR_INVALID, "--replay needs -m MODEL (the subject's model)");
    if (o->arbiter && !o->model)
        return bn_error_set(err, BN_ERR_INVALID, "--arbiter needs -m MODEL (the subject's model: its declared math)");
    if (o->fault && o->subject)
        return bn_error_set(err, BN_ERR_INVALID, "parity driver: a fault is seeded only into a subject it records");
    parity_driver_run *r = calloc(1, sizeof *r);
    if (!r) return bn_error_nomem(err, sizeof *r, "parity driver: the run");
    bn_model *m = NULL; /* loaded once: recording, hints and replay share it */
    char sha[BN_SHA256_HEX_SIZE];
    bn_status st = open_all(o, r, &m, err);
    if (!st) st = check_replay(o, r, sha, err);
    const parity_compare_opts co = {.pool = r->pool, .cancel = o->cancel, .progress = o->progress};
    if (!st) st = parity_compare(r->trace[0], r->map[0], r->trace[1], r->map[1], r->policy, &co, &r->result, err);
    if (!st) st = localize(o, r, &m, sha[0] ? sha : NULL, err);
    if (!st && o->receipt) st = build_receipt(o, r, &m, err);
    bn_model_free(m);
    if (st) {
        parity_driver_run_free(r);
        return st;
    }
    *out = r;
    return BN_OK;
}
