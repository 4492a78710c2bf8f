/* retrace.c — how a foreign engine writes a parity trace (bitparity.h).
 *
 * A real engine calls the writer from its forward pass; this example takes
 * its "activations" from an existing canonical trace, so that it runs
 * without a model of its own: it reads IN.npz with the library's reader and
 * writes every evaluation and tap again through the public writer, as the
 * engine PRODUCER. `bitparity compare OUT.npz IN.npz` then passes (the
 * arrays are the same), and an engine's own trace is one edit away: replace
 * the loaded arrays with yours.
 *
 *   retrace IN.npz OUT.npz PRODUCER [MODEL.gguf]
 *
 * Build against an installed bitparity:
 *   cc retrace.c $(pkg-config --cflags --libs bitparity) -o retrace
 * or with CMake: find_package(bitparity) and link bitparity::bitparity.
 */
#include <stdio.h>
#include <stdlib.h>

#include <bitparity.h>

#include "parity/trace.h" /* the reader, only to get this example's data */

static int fail(const bn_error *err) {
    fprintf(stderr, "retrace: %s\n", err->msg);
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: retrace IN.npz OUT.npz PRODUCER [MODEL.gguf]\n");
        return 2;
    }
    bn_error err = {0};
    parity_trace *in;
    if (parity_trace_open(argv[1], &in, &err)) return fail(&err);

    bitparity_trace_writer *w;
    if (bitparity_trace_writer_open(argv[2], argv[3], &w, &err)) {
        parity_trace_close(in);
        return fail(&err);
    }
    /* What the comparer uses to choose its policy and to warn about a
     * different model: say what your engine ran. */
    const char *weight_type = parity_trace_get(in, "model.weight_type");
    const char *numerics = parity_trace_get(in, "settings.numerics");
    bn_status st = BN_OK;
    if (weight_type) st = bitparity_trace_writer_set(w, "model.weight_type", weight_type, &err);
    if (!st && numerics) st = bitparity_trace_writer_set(w, "numerics", numerics, &err);
    if (!st && argc == 5) st = bitparity_trace_writer_set_model_file(w, argv[4], &err);

    for (int64_t k = 0; !st && k < parity_trace_eval_count(in); k++) {
        const parity_eval *ev = parity_trace_eval(in, k);
        st = bitparity_trace_writer_begin_evaluation(w, ev->tokens, ev->n_tokens, ev->p0, &err);
        for (int64_t i = 0; !st && i < parity_trace_tap_count(in); i++) {
            const char *tap = parity_trace_tap_name(in, i);
            if (parity_trace_resolve(in, k, tap) < 0) continue; /* a tap this evaluation lacks */
            npz_array a;
            st = parity_trace_load_raw(in, k, tap, &a, &err);
            if (st) break;
            if (a.info.dtype == NPZ_I8)
                st = bitparity_trace_writer_write_tap_int8(w, tap, a.data, a.info.shape, a.info.ndim, &err);
            else if (a.info.dtype == NPZ_F32)
                st = bitparity_trace_writer_write_tap(w, tap, a.data, a.info.shape, a.info.ndim, &err);
            else
                st = bn_error_set(&err, BN_ERR_UNSUPPORTED, "%s: e%lld/%s: not float32 or int8", argv[1],
                                  (long long)k, tap);
            npz_array_free(&a);
        }
    }
    parity_trace_close(in);
    if (st) {
        bitparity_trace_writer_abort(w); /* OUT.npz is left as it was */
        return fail(&err);
    }
    if (bitparity_trace_writer_close(w, &err)) return fail(&err);
    return 0;
}
