/* tokenizer.h — text <-> token ids for the vocabularies a GGUF carries, the
 * BitNet 2B-4T chat template, and the tiktoken -> GGUF vocabulary converter.
 *
 * Two vocabulary kinds (docs/specs/tokenizer.md), behaving as llama.cpp does:
 *   gpt2  byte-level BPE. Pre-split with a PCRE2 regex (pre = "llama-bpe" /
 *         "llama3": the LLaMA-3 regex, ignore_merges; pre = "default" /
 *         "gpt2" or absent: GPT-2's regex), pieces mapped byte-wise through
 *         GPT-2's bytes_to_unicode, then merged by rank (lowest rank first,
 *         leftmost on ties).
 *   llama SentencePiece style: spaces -> U+2581, a leading U+2581 added
 *         (add_space_prefix, default true), adjacent symbols merged by the
 *         highest score (leftmost on ties), leftovers as <0xXX> byte tokens.
 *
 * A bn_tokenizer is immutable after loading and owns copies of everything
 * it needs: it may outlive the bn_gguf and be shared by threads.
 */
#ifndef BITNET_TOKENIZER_H
#define BITNET_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet/gguf.h"
#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bn_tokenizer bn_tokenizer;

typedef enum bn_vocab_kind {
    BN_VOCAB_BPE = 1, /* tokenizer.ggml.model = "gpt2" */
    BN_VOCAB_SPM = 2, /* tokenizer.ggml.model = "llama" */
} bn_vocab_kind;

/* tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
typedef enum bn_token_type {
    BN_TOKEN_UNDEFINED = 0,
    BN_TOKEN_NORMAL = 1,
    BN_TOKEN_UNKNOWN = 2,
    BN_TOKEN_CONTROL = 3,
    BN_TOKEN_USER_DEFINED = 4,
    BN_TOKEN_UNUSED = 5,
    BN_TOKEN_BYTE = 6,
} bn_token_type;

/* Builds a tokenizer from the tokenizer.ggml.* keys of an open file.
 * Validates: the model name (unknown -> BN_ERR_UNSUPPORTED naming
 * tokenizer.ggml.model), the pre-tokenizer name, array types and lengths,
 * UTF-8 of every token string, special ids in range, every merge "a b"
 * naming two existing tokens whose concatenation is a token (error names
 * the merge index). Errors are BN_ERR_FORMAT/UNSUPPORTED with a message
 * "<file>: <key>[index]: <what>". On failure *out is NULL. */
bn_status bn_tokenizer_load(const bn_gguf *g, bn_tokenizer **out, bn_error *err);

void bn_tokenizer_free(bn_tokenizer *tok); /* NULL is fine */

/* --- properties (tok must be a loaded tokenizer; none of these fail) ---- */
bn_vocab_kind bn_tokenizer_kind(const bn_tokenizer *tok);
/* Pre-tokenizer name as stored ("llama-bpe", "default" when absent). */
const char *bn_tokenizer_pre(const bn_tokenizer *tok);
/* Number of token ids (length of tokenizer.ggml.tokens). */
int32_t bn_tokenizer_n_vocab(const bn_tokenizer *tok);
/* Number of merges; 0 for SPM. */
int32_t bn_tokenizer_n_merges(const bn_tokenizer *tok);
/* tokenizer.ggml.add_bos_token / add_eos_token, with llama.cpp's defaults
 * when absent (BOS: true for llama and llama-bpe, false for GPT-2; EOS false). */
bool bn_tokenizer_add_bos(const bn_tokenizer *tok);
bool bn_tokenizer_add_eos(const bn_tokenizer *tok);

/* Special ids; -1 when the vocabulary has none. Absent keys take llama.cpp's
 * SPM defaults (BOS 1, EOS 2, UNK 0); a gpt2 vocabulary without them has
 * none (llama.cpp would use id 11). EOT comes from
 * tokenizer.ggml.eot_token_id, else from a token spelled "<|eot_id|>",
 * "<|im_end|>", "<|end|>", "<end_of_turn>" or "<|endoftext|>" (llama.cpp's
 * fallback). */
int32_t bn_token_bos(const bn_tokenizer *tok);
int32_t bn_token_eos(const bn_tokenizer *tok);
int32_t bn_token_eot(const bn_tokenizer *tok);
int32_t bn_token_unk(const bn_tokenizer *tok);
int32_t bn_token_pad(const bn_tokenizer *tok);
/* True for the ids that end a generation: EOS and EOT. */
bool bn_token_is_eog(const bn_tokenizer *tok, int32_t id);

/* Type of id (BN_TOKEN_UNDEFINED when out of range). */
bn_token_type bn_token_type_of(const bn_tokenizer *tok, int32_t id);
/* The token's string as stored in the GGUF (GPT-2 unicode form for BPE,
 * U+2581 for spaces in SPM), NUL-terminated; NULL when out of range. */
const char *bn_token_text(const bn_tokenizer *tok, int32_t id, size_t *len);
/* Id of the token whose stored string is exactly s[0..len), or -1. */
int32_t bn_token_lookup(const bn_tokenizer *tok, const char *s, size_t len);

/* The byte a SentencePiece byte-fallback token stands for: exactly "<0xHH>"
 * (6 bytes, HH hex in either case) gives 0..255, anything else -1. The
 * loader refuses a BYTE-typed token this rejects; converters use it to decide
 * which tokens are BYTE. */
int bn_token_byte_value(const char *s, size_t len);

/* --- encoding / decoding --------------------------------------------- */

/* Tokenizes text[0..len) (any bytes; invalid UTF-8 becomes U+FFFD for BPE,
 * as llama.cpp does). add_special: prepend BOS when the vocabulary says
 * add_bos_token (append EOS when add_eos_token). parse_special: text equal
 * to a control/unknown token (e.g. "<|eot_id|>") becomes that token;
 * user-defined tokens are always matched. *ids is malloc'ed (free() it;
 * NULL with *n_ids = 0 for no tokens). Linearithmic in len. */
bn_status bn_tokenize(const bn_tokenizer *tok, const char *text, size_t len, bool add_special,
                      bool parse_special, int32_t **ids, size_t *n_ids, bn_error *err);

/* The bytes one token stands for: BPE normal tokens decoded from GPT-2
 * unicode form, SPM U+2581 -> space and <0xXX> -> the byte, control,
 * unknown and user-defined tokens their text. Not NUL-terminated (may hold NULs);
 * NULL when id is out of range. Points into tok. */
const char *bn_token_piece(const bn_tokenizer *tok, int32_t id, size_t *len);

/* Concatenates the pieces of ids into a malloc'ed NUL-terminated *text of
 * *len bytes. render_special: control tokens contribute their text
 * (otherwise nothing). SPM with add_space_prefix drops one leading space
 * of the first piece, so detokenize(tokenize(s)) == s. A leading BOS /
 * trailing EOS are dropped when remove_special. An id out of range is
 * BN_ERR_INVALID naming its position. */
bn_status bn_detokenize(const bn_tokenizer *tok, const int32_t *ids, size_t n_ids,
                        bool remove_special, bool render_special, char **text, size_t *len,
                        bn_error *err);

/* --- chat template (BitNet b1.58 2B-4T, docs/specs/bitnet-graph.md) ---------- */
typedef struct bn_chat_msg {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* NUL-terminated UTF-8 */
} bn_chat_msg;

/* Builds the prompt text llama.cpp's "bitnet" template produces:
 * system -> "System: {content}", user -> "User: {content}<|eot_id|>Assistant: ",
 * assistant -> "{content}" as is. No BOS in the text: tokenize it with
 * add_special = true and parse_special = true. Unknown role -> BN_ERR_INVALID
 * naming the message index. *text is malloc'ed. */
bn_status bn_chat_template_bitnet(const bn_chat_msg *msgs, size_t n_msgs, char **text,
                                  size_t *len, bn_error *err);

/* --- tiktoken converter (engine/src/tiktoken_convert.c) ----------------- */
typedef struct bn_tiktoken_stats {
    int64_t n_ranks;   /* lines of the rank file (128000 for LLaMA-3) */
    int64_t n_special; /* special tokens appended after the ranks (256) */
    int64_t n_merges;  /* merges derived from the ranks (280147 for LLaMA-3) */
} bn_tiktoken_stats;

/* Converts a tiktoken rank file (lines "base64(bytes) rank", ranks a
 * permutation of 0..n-1) into a vocabulary-only GGUF: general.architecture
 * "llama", tokenizer.ggml.model "gpt2", pre "llama-bpe", tokens in GPT-2
 * unicode form with LLaMA-3's 256 special tokens appended (ids n..n+255,
 * token_type 3; others 1), merges = for each multi-byte token in rank
 * order, every split into two tokens, ordered by the ranks of the two
 * halves (what Hugging Face's TikTokenConverter emits), BOS n, EOS n+1,
 * EOT n+9, add_bos_token true, add_eos_token false. Bad lines name the
 * file and line. stats may be NULL. The GGUF appears at out_path only when
 * complete (bitnet/atomic_file.h): on failure or cancellation (cancel,
 * NULL: never; BN_ERR_CANCELLED) an existing file there is left as it was. */
bn_status bn_tiktoken_convert(const char *in_path, const char *out_path, bn_tiktoken_stats *stats,
                              const volatile sig_atomic_t *cancel, bn_error *err);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_TOKENIZER_H */
