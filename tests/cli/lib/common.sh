# common.sh — what the CLI test scripts share, sourced after `set -u`:
# bp = the bitparity binary ($1), src = the source tree, py = the Python,
# tmp = a private folder removed at exit, fail MESSAGE = print and exit 1.
bp=$1
src=${BITPARITY_SOURCE_DIR:?BITPARITY_SOURCE_DIR is not set}
py=${BITPARITY_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
