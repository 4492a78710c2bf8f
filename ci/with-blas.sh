#!/usr/bin/env bash
# Runs a command with numpy bound to one named BLAS build, without touching the machine's
# alternatives: Debian installs each BLAS in its own library directory, and the loader takes
# libblas.so.3 from LD_LIBRARY_PATH before the alternatives link.
#   ci/with-blas.sh reference|openblas COMMAND [ARG...]
# Checks, before running COMMAND, that /usr/bin/python3's numpy really loads that BLAS (exit 2
# when it does not, e.g. the package is missing: ci/bootstrap.sh installs both).
set -euo pipefail
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
case "${1:-}" in
  reference) dirs="/usr/lib/$multiarch/blas:/usr/lib/$multiarch/lapack" ;;
  openblas)  dirs="/usr/lib/$multiarch/openblas-pthread" ;;
  *) echo "usage: ci/with-blas.sh reference|openblas COMMAND [ARG...]" >&2; exit 2 ;;
esac
want=${dirs%%:*}/libblas.so.3
shift
[ -e "$want" ] || { echo "with-blas: $want is missing (run ci/bootstrap.sh)" >&2; exit 2; }
export LD_LIBRARY_PATH="$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
loaded=$(/usr/bin/python3 -c '
import numpy, os
print("\n".join(sorted({os.path.realpath(l.split()[-1]) for l in open("/proc/self/maps")
                        if "libblas" in l or "libopenblas" in l})))')
real=$(realpath "$want")
if ! grep -qxF "$real" <<<"$loaded"; then
  echo "with-blas: numpy did not load $real; it loaded:" >&2; echo "$loaded" >&2; exit 2
fi
echo "with-blas: numpy uses $real" >&2
exec "$@"
