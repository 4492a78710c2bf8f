/* receipt_schema.c — the table of receipt_schema.h. */
#include "parity/receipt_schema.h"

const parity_receipt_key parity_receipt_keys[PARITY_RK_COUNT] = {
#define PARITY_RK_ROW(id, section, key, type, doc) {section, key, PARITY_RT_##type, doc},
    PARITY_RECEIPT_KEYS(PARITY_RK_ROW)
#undef PARITY_RK_ROW
};

const char *parity_receipt_type_name(parity_receipt_type t) {
    static const char *const names[] = {"string", "integer", "float", "bool", "mapping", "list"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}
