/* convert.h — foreign model formats to GGUF. (The tiktoken vocabulary
 * converter is part of the tokenizer module: bn_tiktoken_convert.) */
#ifndef BITNET_CONVERT_H
#define BITNET_CONVERT_H

#include "bitnet/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Converts a llama2.c checkpoint (7 int32 header, float32 weights; negative
 * vocab_size = separate classifier) and its tokenizer.bin (max_token_length,
 * then per token float score, int32 length, bytes) into a llama-arch GGUF
 * with an F32 copy of every weight and a SentencePiece-style vocabulary
 * (spaces as U+2581, <0xXX> byte tokens, BOS 1, EOS 2, UNK 0). Every size is
 * checked against the header; messages name the file and byte offset. The
 * GGUF appears at out_path only when complete (bitnet/atomic_file.h);
 * cancel (NULL: never) is polled per MiB written (BN_ERR_CANCELLED). */
bn_status bn_llama2c_convert(const char *ckpt_path, const char *tok_path, const char *out_path,
                             const volatile sig_atomic_t *cancel, bn_error *err);

#ifdef __cplusplus
}
#endif

#endif
