/* receipt_schema.h — the one table of receipt keys (docs/receipt.md): every
 * key a receipt may hold, with its parent section, its type and one line
 * saying what it means. The writer (receipt.c) and the reader (reports/)
 * name keys only through this table, and tests check that a written receipt
 * uses exactly these keys and that docs/receipt.md lists exactly them, so
 * the three cannot drift apart.
 *
 * Sections are dotted paths from the root; "[]" is an item of a list. The
 * reference's keys are those of subject, input.reference_evaluations[]'s
 * those of input.evaluations[]. */
#ifndef PARITY_RECEIPT_SCHEMA_H
#define PARITY_RECEIPT_SCHEMA_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum parity_receipt_type {
    PARITY_RT_STR,  /* a string (or null) */
    PARITY_RT_INT,  /* an integer (or null) */
    PARITY_RT_NUM,  /* a float; .inf, -.inf, .nan (strings in JSON), or null */
    PARITY_RT_BOOL, /* true or false */
    PARITY_RT_MAP,  /* a mapping (or null) */
    PARITY_RT_LIST, /* a list */
} parity_receipt_type;

/* X(ID, section, key, type, doc) for every key, in the order a receipt
 * writes them. */
#define PARITY_RECEIPT_KEYS(X) \
    X(RECEIPT, "", "receipt", STR, "the format and version, bitparity/v1") \
    X(CREATED, "", "created", STR, "UTC time the receipt was built") \
    X(TOOL, "", "tool", MAP, "the bitparity that wrote the receipt") \
    X(TOOL_NAME, "tool", "name", STR, "bitparity") \
    X(TOOL_VERSION, "tool", "version", STR, "its version") \
    X(TOOL_COMMIT, "tool", "commit", STR, "its git commit") \
    X(HOST, "", "host", MAP, "the machine the comparison ran on") \
    X(HOST_CPU, "host", "cpu", STR, "/proc/cpuinfo model name") \
    X(HOST_SIMD, "host", "simd", STR, "kernel level the metrics ran with") \
    X(HOST_THREADS, "host", "threads", INT, "worker threads") \
    X(MODEL, "", "model", MAP, "the subject's model (the reference's when the subject names none)") \
    X(MODEL_PATH, "model", "path", STR, "its path as recorded") \
    X(MODEL_SHA256, "model", "sha256", STR, "its sha256") \
    X(MODEL_ARCH, "model", "arch", STR, "general.architecture, null when the trace does not say") \
    X(MODEL_HPARAMS, "model", "hparams", MAP, "the hyper-parameters the engine bound; null without the model file (compare without -m)") \
    X(HP_ARCH, "model.hparams", "arch", STR, "bitnet-b1.58, bitnet-25, bitnet or llama") \
    X(HP_N_VOCAB, "model.hparams", "n_vocab", INT, "vocabulary size (rows of token_embd)") \
    X(HP_N_EMBD, "model.hparams", "n_embd", INT, "hidden size") \
    X(HP_N_LAYER, "model.hparams", "n_layer", INT, "blocks") \
    X(HP_N_FF, "model.hparams", "n_ff", INT, "feed-forward size") \
    X(HP_N_HEAD, "model.hparams", "n_head", INT, "attention heads") \
    X(HP_N_HEAD_KV, "model.hparams", "n_head_kv", INT, "key/value heads") \
    X(HP_HEAD_DIM, "model.hparams", "head_dim", INT, "per-head size (= rope dimension)") \
    X(HP_N_CTX_TRAIN, "model.hparams", "n_ctx_train", INT, "context_length") \
    X(HP_ROPE_TYPE, "model.hparams", "rope_type", STR, "neox (pairs i, i+D/2) or normal (pairs 2i, 2i+1)") \
    X(HP_ROPE_BASE, "model.hparams", "rope_base", NUM, "rope.freq_base") \
    X(HP_RMS_EPS, "model.hparams", "rms_eps", NUM, "attention.layer_norm_rms_epsilon") \
    X(HP_ACTIVATION, "model.hparams", "activation", STR, "relu2 or silu") \
    X(HP_SUB_NORMS, "model.hparams", "sub_norms", BOOL, "the blocks have attn/ffn sub-norms") \
    X(HP_LM_HEAD, "model.hparams", "lm_head", STR, "tied (token_embd) or output (output.weight)") \
    X(HP_LM_HEAD_TYPE, "model.hparams", "lm_head_type", STR, "the lm_head's tensor type") \
    X(MODEL_TENSORS, "model", "tensors", MAP, "the model file's tensors by type; null without the model file") \
    X(TENSORS_COUNT, "model.tensors", "count", INT, "tensors in the file") \
    X(TENSORS_BYTES, "model.tensors", "bytes", INT, "their data bytes") \
    X(TENSORS_TYPES, "model.tensors", "types", LIST, "one entry per tensor type, in ggml type id order") \
    X(TT_TYPE, "model.tensors.types[]", "type", STR, "the type (f32, f16, i2_s, tq2_0, ...)") \
    X(TT_COUNT, "model.tensors.types[]", "count", INT, "tensors of that type") \
    X(TT_BYTES, "model.tensors.types[]", "bytes", INT, "their data bytes") \
    X(MODEL_TOKENIZER_SHA256, "model", "tokenizer_sha256", STR, "sha256 of the tokenizer metadata (Tokenizer hash below); null without the model file or tokenizer keys") \
    X(ENGINE, "", "engine", MAP, "the engine run that recorded the subject (check); null when the subject was read from a file") \
    X(ENGINE_SIMD, "engine", "simd", STR, "instruction set the engine's kernels ran with (portable, avx2, ...)") \
    X(ENGINE_MATMUL, "engine", "matmul", STR, "the projections' matmul kernel: weight x activations, instruction set") \
    X(ENGINE_LM_HEAD, "engine", "lm_head", STR, "the lm_head's matmul kernel") \
    X(SUBJECT, "", "subject", MAP, "the trace under test (the same keys as reference)") \
    X(REFERENCE, "", "reference", MAP, "the trace compared against") \
    X(SIDE_PRODUCER, "subject", "producer", MAP, "meta.yaml producer") \
    X(SIDE_PRODUCER_NAME, "subject.producer", "name", STR, "bitparity, bitparity-reference, bitnet.cpp, llama.cpp") \
    X(SIDE_PRODUCER_VERSION, "subject.producer", "version", STR, "when recorded") \
    X(SIDE_PRODUCER_COMMIT, "subject.producer", "commit", STR, "when recorded") \
    X(SIDE_PRODUCER_SOURCE, "subject.producer", "source", STR, "foreign dumps: where the producer came from") \
    X(SIDE_NUMERICS, "subject", "numerics", STR, "settings.numerics, null when absent") \
    X(SIDE_WEIGHT_TYPE, "subject", "weight_type", STR, "model.weight_type as the trace records it; null") \
    X(SIDE_FAULT, "subject", "fault", STR, "settings.fault (seeded bug), null when absent") \
    X(SIDE_TRACE, "subject", "trace", STR, "the trace path as given; (engine trace in memory) for check's own trace when not kept") \
    X(SIDE_STORAGE, "subject", "storage", STR, "file (read from the trace file), kept (recorded now, written to trace by --keep-trace) or memory (recorded now, never on disk)") \
    X(SIDE_SIZE_BYTES, "subject", "size_bytes", INT, "the trace's size (file or memory)") \
    X(SIDE_SHA256, "subject", "sha256", STR, "of the trace's bytes (file or memory); null when not hashed") \
    X(SIDE_LAYOUT, "subject", "layout", STR, "canonical or ggml-nodes") \
    X(SIDE_MAP, "subject", "map", MAP, "the tap map that read the trace") \
    X(SIDE_MAP_NAME, "subject.map", "name", STR, "its name") \
    X(SIDE_MAP_ORIGIN, "subject.map", "origin", STR, "builtin:NAME or the file's path") \
    X(SIDE_MAP_SHA256, "subject.map", "sha256", STR, "of the map's text") \
    X(SIDE_EVALUATIONS, "subject", "evaluations", INT, "evaluations in the trace") \
    X(SIDE_MODEL, "subject", "model", MAP, "the model as this trace's meta.yaml records it") \
    X(SIDE_MODEL_PATH, "subject.model", "path", STR, "its path") \
    X(SIDE_MODEL_SHA256, "subject.model", "sha256", STR, "its sha256") \
    X(INPUT, "", "input", MAP, "what both sides were given") \
    X(INPUT_EVALUATIONS, "input", "evaluations", LIST, "the subject's evaluations") \
    X(INPUT_REFERENCE_EVALUATIONS, "input", "reference_evaluations", LIST, "the reference's, only when tokens differ (see summary.diagnosis)") \
    X(EVAL_ID, "input.evaluations[]", "id", STR, "e0, e1, ...") \
    X(EVAL_TOKENS, "input.evaluations[]", "tokens", LIST, "token ids") \
    X(EVAL_P0, "input.evaluations[]", "p0", INT, "position of the first token") \
    X(POLICY, "", "policy", MAP, "the tolerance policy") \
    X(POLICY_NAME, "policy", "name", STR, "its name") \
    X(POLICY_ORIGIN, "policy", "origin", STR, "builtin:NAME or the policy file's path") \
    X(POLICY_SHA256, "policy", "sha256", STR, "of the exact policy text") \
    X(POLICY_CHOICE, "policy", "choice", STR, "why this policy: auto: ... or --policy NAME") \
    X(SUMMARY, "", "summary", MAP, "the outcome") \
    X(SUMMARY_VERDICT, "summary", "verdict", STR, "pass or fail") \
    X(SUMMARY_DIAGNOSIS, "summary", "diagnosis", STR, "one line when the comparison could not run normally") \
    X(SUMMARY_COUNTS, "summary", "counts", MAP, "taps by outcome") \
    X(COUNTS_TAPS, "summary.counts", "taps", INT, "entries in taps") \
    X(COUNTS_COMPARED, "summary.counts", "compared", INT, "pass + fail") \
    X(COUNTS_PASS, "summary.counts", "pass", INT, "compared taps within their limits") \
    X(COUNTS_FAIL, "summary.counts", "fail", INT, "compared taps that break a limit") \
    X(COUNTS_BIT_IDENTICAL, "summary.counts", "bit_identical", INT, "compared taps whose 32-bit patterns all agree") \
    X(COUNTS_SHAPE_MISMATCH, "summary.counts", "shape_mismatch", INT, "taps whose shapes disagree") \
    X(COUNTS_MISSING_REFERENCE, "summary.counts", "missing_reference", INT, "subject taps the reference does not have") \
    X(COUNTS_MISSING_SUBJECT, "summary.counts", "missing_subject", INT, "reference taps the subject does not have") \
    X(COUNTS_SKIPPED, "summary.counts", "skipped", INT, "taps the policy says to skip") \
    X(SUMMARY_EVALUATIONS, "summary", "evaluations", MAP, "evaluation counts") \
    X(EVALS_SUBJECT, "summary.evaluations", "subject", INT, "in the subject") \
    X(EVALS_REFERENCE, "summary.evaluations", "reference", INT, "in the reference") \
    X(EVALS_COMPARED, "summary.evaluations", "compared", INT, "compared") \
    X(SUMMARY_FIRST_DIVERGENCE, "summary", "first_divergence", MAP, "the first failing tap in evaluation order; null when nothing failed") \
    X(DIV_EVALUATION, "summary.first_divergence", "evaluation", STR, "its evaluation") \
    X(DIV_TAP, "summary.first_divergence", "tap", STR, "its tap") \
    X(DIV_LAYER, "summary.first_divergence", "layer", INT, "its layer; null for token_embd, output_norm, logits") \
    X(DIV_METRIC, "summary.first_divergence", "metric", STR, "the first limit broken (policy.h order), or shape") \
    X(DIV_VALUE, "summary.first_divergence", "value", NUM, "the metric's value") \
    X(DIV_LIMIT, "summary.first_divergence", "limit", NUM, "the limit it breaks") \
    X(SUMMARY_FAILING_EVALUATIONS, "summary", "failing_evaluations", LIST, "ids of the evaluations with a failing tap") \
    X(SUMMARY_HINTS, "summary", "hints", LIST, "named diagnoses with their numbers") \
    X(HINT_NAME, "summary.hints[]", "name", STR, "the diagnosis (activation-swap, scale-factor, ...)") \
    X(HINT_MESSAGE, "summary.hints[]", "message", STR, "what it says, in words") \
    X(HINT_EVIDENCE, "summary.hints[]", "evidence", STR, "the numbers behind it") \
    X(SUMMARY_ACCEPTED, "summary", "accepted", LIST, "equivalences the policy accepts that made a failing comparison pass (docs/hints.md)") \
    X(GROWTH, "", "error_growth", MAP, "how the error develops layer by layer") \
    X(GROWTH_METRIC, "error_growth", "metric", STR, "nmse") \
    X(GROWTH_REDUCE, "error_growth", "reduce", STR, "how a layer's taps are reduced") \
    X(GROWTH_LAYERS, "error_growth", "layers", INT, "the length of every nmse_max") \
    X(GROWTH_EVALUATIONS, "error_growth", "evaluations", LIST, "one entry per compared evaluation") \
    X(GROWTH_EVALUATION, "error_growth.evaluations[]", "evaluation", STR, "its id") \
    X(GROWTH_NMSE_MAX, "error_growth.evaluations[]", "nmse_max", LIST, "one per layer; null where nothing was compared") \
    X(TAPS, "", "taps", LIST, "every tap, in evaluation order") \
    X(TAP_EVALUATION, "taps[]", "evaluation", STR, "its evaluation") \
    X(TAP_NAME, "taps[]", "name", STR, "canonical tap name") \
    X(TAP_LAYER, "taps[]", "layer", INT, "null for token_embd, output_norm, logits") \
    X(TAP_STATUS, "taps[]", "status", STR, "pass, fail, shape-mismatch, missing-reference, missing-subject or skipped") \
    X(TAP_SHAPE, "taps[]", "shape", LIST, "the subject's (canonical) shape") \
    X(TAP_REFERENCE_SHAPE, "taps[]", "reference_shape", LIST, "the reference's after its tap map") \
    X(TAP_REFERENCE_SOURCE, "taps[]", "reference_source", STR, "which member of the reference it was read from") \
    X(TAP_ROWS, "taps[]", "rows", LIST, "token rows compared (a pruned reference: the last rows only)") \
    X(TAP_METRICS, "taps[]", "metrics", MAP, "metrics.h; floats over pairs where both values are finite") \
    X(M_N, "taps[].metrics", "n", INT, "elements") \
    X(M_N_FINITE, "taps[].metrics", "n_finite", INT, "pairs where both values are finite") \
    X(M_BIT_IDENTICAL, "taps[].metrics", "bit_identical", BOOL, "all 32-bit patterns agree") \
    X(M_N_BITDIFF, "taps[].metrics", "n_bitdiff", INT, "elements whose bits differ") \
    X(M_MAX_ABS, "taps[].metrics", "max_abs", NUM, "largest absolute difference") \
    X(M_MEAN_ABS, "taps[].metrics", "mean_abs", NUM, "mean absolute difference") \
    X(M_RMS_ERR, "taps[].metrics", "rms_err", NUM, "sqrt(mean((a-b)^2))") \
    X(M_NMSE, "taps[].metrics", "nmse", NUM, "sum (a-b)^2 / sum b^2 (a = subject, b = reference)") \
    X(M_NMSE_LLAMA, "taps[].metrics", "nmse_llama", NUM, "sum (a-b)^2 / sum a^2 (test-backend-ops)") \
    X(M_NMSE_VAR, "taps[].metrics", "nmse_var", NUM, "mean((a-b)^2) / var(b) (check-nmse.py)") \
    X(M_COSINE, "taps[].metrics", "cosine", NUM, "cosine similarity") \
    X(M_REL_RMS, "taps[].metrics", "rel_rms", NUM, "rms(a-b) / rms(b)") \
    X(M_SCALE, "taps[].metrics", "scale", NUM, "the factor s that minimises the norm of a - s·b") \
    X(M_SCALE_NMSE, "taps[].metrics", "scale_nmse", NUM, "what is left once the scale is explained") \
    X(M_ULP_MEAN, "taps[].metrics", "ulp_mean", NUM, "mean float32 ULP distance") \
    X(M_ULP_MAX, "taps[].metrics", "ulp_max", INT, "largest ULP distance") \
    X(M_NAN, "taps[].metrics", "nan", LIST, "NaN counts: subject, reference") \
    X(M_INF, "taps[].metrics", "inf", LIST, "Inf counts: subject, reference") \
    X(M_NAN_MISMATCH, "taps[].metrics", "nan_mismatch", INT, "positions NaN on one side only") \
    X(M_INF_MISMATCH, "taps[].metrics", "inf_mismatch", INT, "positions with unmatched infinities") \
    X(M_WORST, "taps[].metrics", "worst", MAP, "where the absolute difference is largest") \
    X(WORST_AT, "taps[].metrics.worst", "at", LIST, "its position (row = token)") \
    X(WORST_SUBJECT, "taps[].metrics.worst", "subject", NUM, "the subject's value there") \
    X(WORST_REFERENCE, "taps[].metrics.worst", "reference", NUM, "the reference's value there") \
    X(TAP_LIMITS, "taps[]", "limits", MAP, "the policy's limits for the tap (only those set)") \
    X(L_RULE, "taps[].limits", "rule", STR, "the policy rule that matched, or defaults") \
    X(L_RULE_LINE, "taps[].limits", "rule_line", INT, "its line in the policy") \
    X(L_BIT_IDENTICAL, "taps[].limits", "bit_identical", BOOL, "bit identity required") \
    X(L_ALLOW_NAN, "taps[].limits", "allow_nan", BOOL, "matched NaNs allowed") \
    X(L_NMSE_MAX, "taps[].limits", "nmse_max", NUM, "limit on nmse") \
    X(L_NMSE_LLAMA_MAX, "taps[].limits", "nmse_llama_max", NUM, "limit on nmse_llama") \
    X(L_COSINE_MIN, "taps[].limits", "cosine_min", NUM, "limit on cosine") \
    X(L_MAX_ABS_MAX, "taps[].limits", "max_abs_max", NUM, "limit on max_abs") \
    X(L_REL_RMS_MAX, "taps[].limits", "rel_rms_max", NUM, "limit on rel_rms") \
    X(L_ULP_MAX, "taps[].limits", "ulp_max", NUM, "limit on ulp_max") \
    X(L_KLD_MEAN_MAX, "taps[].limits", "kld_mean_max", NUM, "logits: limit on kld_mean") \
    X(L_KLD_P99_MAX, "taps[].limits", "kld_p99_max", NUM, "logits: limit on kld_p99") \
    X(L_KLD_MAX_MAX, "taps[].limits", "kld_max_max", NUM, "logits: limit on kld_max") \
    X(L_TOP1_AGREE_MIN, "taps[].limits", "top1_agree_min", NUM, "logits: limit on top1_agree") \
    X(L_TOPK_OVERLAP_MIN, "taps[].limits", "topk_overlap_min", NUM, "logits: limit on top5_overlap") \
    X(L_SAME_TOP_P_MIN, "taps[].limits", "same_top_p_min", NUM, "logits: limit on same_top_p") \
    X(TAP_FAILED, "taps[]", "failed", MAP, "fail and shape-mismatch only") \
    X(F_METRIC, "taps[].failed", "metric", STR, "the first limit broken, or shape") \
    X(F_VALUE, "taps[].failed", "value", NUM, "its value (shape: the subject's element count)") \
    X(F_LIMIT, "taps[].failed", "limit", NUM, "the limit (shape: the reference's element count)") \
    X(LOGITS, "", "logits", LIST, "one entry per evaluation whose logits were compared") \
    X(LG_EVALUATION, "logits[]", "evaluation", STR, "its id") \
    X(LG_STATUS, "logits[]", "status", STR, "the verdict of the logits tap") \
    X(LG_POSITIONS, "logits[]", "positions", INT, "rows compared") \
    X(LG_INVALID, "logits[]", "invalid", INT, "rows with NaN or +inf") \
    X(LG_TOP1_AGREE, "logits[]", "top1_agree", NUM, "same argmax") \
    X(LG_SAME_TOP_P, "logits[]", "same_top_p", NUM, "llama.cpp's same top p") \
    X(LG_TOP5_OVERLAP, "logits[]", "top5_overlap", NUM, "overlap of the top 5") \
    X(LG_TOP10_OVERLAP, "logits[]", "top10_overlap", NUM, "overlap of the top 10") \
    X(LG_KLD_MEAN, "logits[]", "kld_mean", NUM, "KL(reference ‖ subject), nats, as llama.cpp --kl-divergence") \
    X(LG_KLD_MEDIAN, "logits[]", "kld_median", NUM, "its median") \
    X(LG_KLD_P99, "logits[]", "kld_p99", NUM, "its 99th percentile") \
    X(LG_KLD_MAX, "logits[]", "kld_max", NUM, "its maximum") \
    X(LG_DP_MEAN, "logits[]", "dp_mean", NUM, "mean change of the reference's top token probability") \
    X(LG_DP_RMS, "logits[]", "dp_rms", NUM, "its RMS") \
    X(LG_DP_MAX_ABS, "logits[]", "dp_max_abs", NUM, "its largest magnitude") \
    X(REPLAY, "", "replay", MAP, "--replay only: where the errors are born") \
    X(RP_MODE, "replay", "mode", STR, "block or op") \
    X(RP_MODEL, "replay", "model", STR, "the model replayed") \
    X(RP_FIRST_LOCAL, "replay", "first_local", MAP, "the first tap that fails from the reference's inputs; null when none") \
    X(FL_EVALUATION, "replay.first_local", "evaluation", STR, "its evaluation") \
    X(FL_TAP, "replay.first_local", "tap", STR, "its tap") \
    X(FL_METRIC, "replay.first_local", "metric", STR, "the first limit broken") \
    X(FL_VALUE, "replay.first_local", "value", NUM, "its value") \
    X(FL_LIMIT, "replay.first_local", "limit", NUM, "the limit") \
    X(RP_BLOCKS, "replay", "blocks", LIST, "block mode: each failing block") \
    X(RB_EVALUATION, "replay.blocks[]", "evaluation", STR, "its evaluation") \
    X(RB_LAYER, "replay.blocks[]", "layer", INT, "its layer") \
    X(RB_ERROR, "replay.blocks[]", "error", STR, "local or inherited") \
    X(RB_NMSE_COMPARED, "replay.blocks[]", "nmse_compared", NUM, "blk.N.out in the comparison; null when not compared") \
    X(RB_NMSE_REPLAYED, "replay.blocks[]", "nmse_replayed", NUM, "blk.N.out replayed") \
    X(RP_FAILING_TAPS, "replay", "failing_taps", LIST, "every tap that fails from the reference's inputs") \
    X(RT_EVALUATION, "replay.failing_taps[]", "evaluation", STR, "its evaluation") \
    X(RT_TAP, "replay.failing_taps[]", "tap", STR, "its tap") \
    X(RT_NMSE, "replay.failing_taps[]", "nmse", NUM, "its nmse") \
    X(ARBITER, "", "arbiter", MAP, "--arbiter only, when the comparison fails: which side the independent reference agrees with") \
    X(AR_VERDICT, "arbiter", "verdict", STR, "subject, reference, both or neither: the side(s) that agree with it") \
    X(AR_SUMMARY, "arbiter", "summary", STR, "one line: who agrees with whom, at which tap, by which metric") \
    X(AR_SHOWS, "arbiter", "shows", STR, "what agreeing with it shows, and what it does not") \
    X(AR_EVALUATION, "arbiter", "evaluation", STR, "the first divergent tap's evaluation") \
    X(AR_TAP, "arbiter", "tap", STR, "the first divergent tap") \
    X(AR_MODEL, "arbiter", "model", STR, "the model file it ran: the subject's") \
    X(AR_ARCH, "arbiter", "arch", STR, "that file's general.architecture") \
    X(AR_ACTIVATION, "arbiter", "activation", STR, "the FFN activation the file declares, as it ran: relu2 or silu") \
    X(AR_ACTIVATION_KEY, "arbiter", "activation_key", STR, "where that comes from: the hidden_activation key, or its absence") \
    X(AR_NUMERICS, "arbiter", "numerics", STR, "the numerics mode it ran in (the subject's)") \
    X(AR_POLICY, "arbiter", "policy", STR, "the built-in policy agreement is judged by") \
    X(AR_SUBJECT, "arbiter", "subject", MAP, "the subject against it at the tap") \
    X(AR_S_AGREES, "arbiter.subject", "agrees", BOOL, "within the policy's limits") \
    X(AR_S_NMSE, "arbiter.subject", "nmse", NUM, "its nmse; null when the shapes differ") \
    X(AR_S_MAX_ABS, "arbiter.subject", "max_abs", NUM, "its largest absolute difference; null when the shapes differ") \
    X(AR_REFERENCE, "arbiter", "reference", MAP, "the reference trace against it at the tap") \
    X(AR_R_AGREES, "arbiter.reference", "agrees", BOOL, "within the policy's limits") \
    X(AR_R_NMSE, "arbiter.reference", "nmse", NUM, "its nmse; null when the shapes differ") \
    X(AR_R_MAX_ABS, "arbiter.reference", "max_abs", NUM, "its largest absolute difference; null when the shapes differ") \
    X(AR_OTHER, "arbiter", "other_activation", MAP, "FFN activation tap, one side disagreeing: that side against it with the other activation forced; null when not run") \
    X(AR_O_ACTIVATION, "arbiter.other_activation", "activation", STR, "the activation forced") \
    X(AR_O_SIDE, "arbiter.other_activation", "side", STR, "subject or reference: the side that disagreed") \
    X(AR_O_AGREES, "arbiter.other_activation", "agrees", BOOL, "that side computes the forced activation, within the policy's limits") \
    X(AR_O_NMSE, "arbiter.other_activation", "nmse", NUM, "its nmse") \
    X(TIMINGS, "", "timings", MAP, "seconds, rounded to microseconds") \
    X(T_OPEN, "timings", "open_s", NUM, "opening the traces") \
    X(T_LOAD, "timings", "load_s", NUM, "loading arrays") \
    X(T_METRICS, "timings", "metrics_s", NUM, "computing metrics") \
    X(T_COMPARE, "timings", "compare_s", NUM, "the whole comparison") \
    X(T_HASH, "timings", "hash_s", NUM, "hashing the trace files")

/* R(ID) for every key a receipt always writes where its section is written
 * (the value may still be null where the table says so); the others appear
 * only when they apply. docs/receipt.schema.json requires exactly these: it is
 * generated from this header (tests/python/receipt_schema.py --write), and
 * tests/python/check_receipts.py fails when the two disagree. New keys
 * are optional until listed here. */
#define PARITY_RECEIPT_REQUIRED(R) \
    R(RECEIPT) R(CREATED) R(TOOL) R(TOOL_NAME) R(TOOL_VERSION) R(TOOL_COMMIT) R(HOST) R(HOST_CPU) R(HOST_SIMD) \
    R(HOST_THREADS) R(MODEL) R(MODEL_PATH) R(MODEL_SHA256) R(MODEL_ARCH) R(MODEL_HPARAMS) R(HP_ARCH) \
    R(HP_N_VOCAB) R(HP_N_EMBD) R(HP_N_LAYER) R(HP_N_FF) R(HP_N_HEAD) R(HP_N_HEAD_KV) R(HP_HEAD_DIM) \
    R(HP_N_CTX_TRAIN) R(HP_ROPE_TYPE) R(HP_ROPE_BASE) R(HP_RMS_EPS) R(HP_ACTIVATION) R(HP_SUB_NORMS) \
    R(HP_LM_HEAD) R(HP_LM_HEAD_TYPE) R(MODEL_TENSORS) R(TENSORS_COUNT) R(TENSORS_BYTES) R(TENSORS_TYPES) \
    R(TT_TYPE) R(TT_COUNT) R(TT_BYTES) R(MODEL_TOKENIZER_SHA256) R(ENGINE) R(ENGINE_SIMD) R(ENGINE_MATMUL) \
    R(ENGINE_LM_HEAD) R(SUBJECT) R(REFERENCE) R(SIDE_PRODUCER) R(SIDE_PRODUCER_NAME) R(SIDE_NUMERICS) \
    R(SIDE_WEIGHT_TYPE) R(SIDE_FAULT) R(SIDE_TRACE) R(SIDE_STORAGE) R(SIDE_SIZE_BYTES) R(SIDE_SHA256) \
    R(SIDE_LAYOUT) R(SIDE_MAP) R(SIDE_MAP_NAME) R(SIDE_MAP_ORIGIN) R(SIDE_MAP_SHA256) R(SIDE_EVALUATIONS) \
    R(SIDE_MODEL) R(SIDE_MODEL_PATH) R(SIDE_MODEL_SHA256) R(INPUT) R(INPUT_EVALUATIONS) R(EVAL_ID) \
    R(EVAL_TOKENS) R(EVAL_P0) R(POLICY) R(POLICY_NAME) R(POLICY_ORIGIN) R(POLICY_SHA256) R(POLICY_CHOICE) \
    R(SUMMARY) R(SUMMARY_VERDICT) R(SUMMARY_DIAGNOSIS) R(SUMMARY_COUNTS) R(COUNTS_TAPS) R(COUNTS_COMPARED) \
    R(COUNTS_PASS) R(COUNTS_FAIL) R(COUNTS_BIT_IDENTICAL) R(COUNTS_SHAPE_MISMATCH) R(COUNTS_MISSING_REFERENCE) \
    R(COUNTS_MISSING_SUBJECT) R(COUNTS_SKIPPED) R(SUMMARY_EVALUATIONS) R(EVALS_SUBJECT) R(EVALS_REFERENCE) \
    R(EVALS_COMPARED) R(SUMMARY_FIRST_DIVERGENCE) R(DIV_EVALUATION) R(DIV_TAP) R(DIV_LAYER) R(DIV_METRIC) \
    R(DIV_VALUE) R(DIV_LIMIT) R(SUMMARY_FAILING_EVALUATIONS) R(SUMMARY_HINTS) R(HINT_NAME) R(HINT_MESSAGE) \
    R(HINT_EVIDENCE) R(GROWTH) R(GROWTH_METRIC) R(GROWTH_REDUCE) R(GROWTH_LAYERS) R(GROWTH_EVALUATIONS) \
    R(GROWTH_EVALUATION) R(GROWTH_NMSE_MAX) R(TAPS) R(TAP_EVALUATION) R(TAP_NAME) R(TAP_LAYER) R(TAP_STATUS) \
    R(M_N) R(M_N_FINITE) R(M_BIT_IDENTICAL) R(M_N_BITDIFF) R(M_MAX_ABS) R(M_MEAN_ABS) R(M_RMS_ERR) R(M_NMSE) \
    R(M_NMSE_LLAMA) R(M_NMSE_VAR) R(M_COSINE) R(M_REL_RMS) R(M_SCALE) R(M_SCALE_NMSE) R(M_ULP_MEAN) \
    R(M_ULP_MAX) R(M_NAN) R(M_INF) R(M_NAN_MISMATCH) R(M_INF_MISMATCH) R(WORST_AT) R(WORST_SUBJECT) \
    R(WORST_REFERENCE) R(L_RULE) R(L_RULE_LINE) R(F_METRIC) R(F_VALUE) R(F_LIMIT) R(LOGITS) R(LG_EVALUATION) \
    R(LG_POSITIONS) R(LG_INVALID) R(LG_TOP1_AGREE) R(LG_SAME_TOP_P) R(LG_TOP5_OVERLAP) R(LG_TOP10_OVERLAP) \
    R(LG_KLD_MEAN) R(LG_KLD_MEDIAN) R(LG_KLD_P99) R(LG_KLD_MAX) R(LG_DP_MEAN) R(LG_DP_RMS) R(LG_DP_MAX_ABS) \
    R(RP_MODE) R(RP_MODEL) R(RP_FIRST_LOCAL) R(FL_EVALUATION) R(FL_TAP) R(FL_METRIC) R(FL_VALUE) R(FL_LIMIT) \
    R(RP_BLOCKS) R(RB_EVALUATION) R(RB_LAYER) R(RB_ERROR) R(RB_NMSE_COMPARED) R(RB_NMSE_REPLAYED) \
    R(RP_FAILING_TAPS) R(RT_EVALUATION) R(RT_TAP) R(RT_NMSE) R(TIMINGS) R(T_OPEN) R(T_LOAD) R(T_METRICS) \
    R(T_COMPARE) R(T_HASH)

typedef enum parity_receipt_key_id {
#define PARITY_RK_ENUM(id, section, key, type, doc) PARITY_RK_##id,
    PARITY_RECEIPT_KEYS(PARITY_RK_ENUM)
#undef PARITY_RK_ENUM
    PARITY_RK_COUNT
} parity_receipt_key_id;

typedef struct parity_receipt_key {
    const char *section; /* "" for the root, "taps[].metrics" */
    const char *key;     /* "nmse" */
    parity_receipt_type type;
    const char *doc;
} parity_receipt_key;

/* The table, indexed by parity_receipt_key_id ([PARITY_RK_COUNT]). */
extern const parity_receipt_key parity_receipt_keys[PARITY_RK_COUNT];

/* The key's name: what a receipt spells it. */
#define PARITY_RK(id) (parity_receipt_keys[PARITY_RK_##id].key)

/* "type" as docs/receipt.md writes it: string, integer, float, bool, mapping, list. */
const char *parity_receipt_type_name(parity_receipt_type t);

#ifdef __cplusplus
}
#endif

#endif /* PARITY_RECEIPT_SCHEMA_H */
