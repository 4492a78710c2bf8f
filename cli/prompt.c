/* prompt.c — what run, trace and check share: loading a model with its
 * tokenizer and turning -p / --tokens / --chat into token ids. */
#include <stdlib.h>
#include <string.h>

#include "bitnet/tokenizer.h"
#include "commands.h"

int cli_parse_load(const char *cmd, const char *s, bn_gguf_load *out) {
    *out = BN_GGUF_LOAD_MEMORY;
    if (!s || bn_gguf_load_parse(s, out)) return -1;
    return cli_usage_error(cmd, "--load '%s': expected mmap or memory", s);
}

int cli_parse_lm_head(const char *cmd, const char *s, uint32_t *type) {
    *type = 0;
    if (!s || bn_model_lm_head_type_parse(s, type)) return -1;
    return cli_usage_error(cmd, "--lm-head '%s': expected stored or q8_0", s);
}

bn_status cli_requantize_lm_head(bn_model *m, const char *path, uint32_t type, int64_t threads, bn_error *err) {
    bn_status st = type ? bn_model_requantize_lm_head(m, type, (int)threads, err) : BN_OK;
    if (st) bn_error_prefix(err, path);
    return st;
}

bn_status cli_load_model(const char *path, bn_gguf_load how, bn_model **m, bn_tokenizer **tok, bn_error *err) {
    *m = NULL;
    *tok = NULL;
    bn_status st = bn_model_load_with(path, how, m, err);
    if (st) return st;
    st = bn_tokenizer_load((*m)->gguf, tok, err);
    if (st) {
        bn_error_prefix(err, path);
        bn_model_free(*m);
        *m = NULL;
    }
    return st;
}

bn_status cli_prompt_tokens(const bn_tokenizer *tok, const char *text, const char *tokens, bool chat, int32_t **ids,
                            int64_t *n, bn_error *err) {
    *ids = NULL;
    *n = 0;
    if (tokens) {
        if (!cli_parse_id_list(tokens, ids, n))
            return bn_error_set(err, BN_ERR_INVALID, "--tokens '%s': expected comma-separated ids such as 1,2,3", tokens);
        return BN_OK;
    }
    if (!text) { /* generation from BOS alone */
        const int32_t bos = bn_token_bos(tok);
        if (bos < 0) return bn_error_set(err, BN_ERR_INVALID, "the vocabulary has no BOS token: give -p or --tokens");
        *ids = malloc(sizeof **ids);
        if (!*ids) return bn_error_nomem(err, sizeof **ids, "the prompt");
        (*ids)[0] = bos;
        *n = 1;
        return BN_OK;
    }
    char *templated = NULL;
    size_t tlen = strlen(text);
    if (chat) {
        const bn_chat_msg msg = {"user", text};
        bn_status st = bn_chat_template_bitnet(&msg, 1, &templated, &tlen, err);
        if (st) return st;
        text = templated;
    }
    size_t count = 0;
    bn_status st = bn_tokenize(tok, text, tlen, true, chat, ids, &count, err);
    free(templated);
    *n = (int64_t)count;
    if (!st && count == 0) st = bn_error_set(err, BN_ERR_INVALID, "the prompt tokenizes to nothing");
    return st;
}
