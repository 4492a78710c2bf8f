#!/usr/bin/env bash
# receipt_schema.sh — receipts of `check` and `compare` on the fixtures against
# docs/receipt.md and docs/receipt.schema.json (JSON Schema, python3-jsonschema):
# the Python checks live in tests/python/check_receipts.py.
# $1 = the bitparity binary.
set -u
bin=$1
src=${BITPARITY_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
py=${BITPARITY_PYTHON:-/usr/bin/python3}
"$py" -c 'import jsonschema, yaml, numpy' ||
    { echo "FAIL: $py lacks jsonschema, yaml or numpy (ci/bootstrap.sh installs python3-jsonschema)"; exit 1; }
BITPARITY_BINARY=$bin exec "$py" "$src/tests/python/check_receipts.py"
