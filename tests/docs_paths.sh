#!/usr/bin/env bash
# docs_paths.sh — keeps docs/design.md and docs/specs/*.md true to the tree:
#  1. every repository path they write in code font (`engine/src/forward.c`,
#     globs such as `parity/maps/*.yaml`) exists;
#  2. every relative Markdown link in them resolves;
#  3. every public header (*/include/**/*.h) is named in docs/design.md, so a
#     new module cannot be added without a line in the design.
# Tokens holding a placeholder (<name>, {N}) are patterns, not paths, and are
# skipped; planned paths are written without code font.
# $1 = the source directory (default: two levels above this script).
set -u
src=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$src" || { echo "FAIL: cannot enter $src"; exit 1; }
design=docs/design.md
[ -f "$design" ] || { echo "FAIL: $design is missing"; exit 1; }
shopt -s nullglob
status=0
roots='engine|parity|reports|cli|reference|fixtures|tests|ci|bench|docs|cmake'

# True when Markdown file $1 has a heading whose GitHub anchor is $2
# (lowercase, punctuation dropped, spaces to hyphens).
has_anchor() {
    grep '^#' "$1" | sed 's/^#* *//' | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9 _-]//g; s/ /-/g' | grep -qxF "$2"
}

checked_design=0
for doc in "$design" docs/specs/*.md; do
    dir=$(dirname "$doc")
    # 1. paths in code font
    while IFS= read -r tok; do
        case $tok in *'<'*|*'{'*|*' '*) continue ;; esac
        if [[ $tok =~ ^($roots)/ ]] || [[ $tok == CMakeLists.txt ]] || [[ $tok == README.md ]]; then
            [ "$doc" = "$design" ] && checked_design=$((checked_design + 1))
            if [[ $tok == *'*'* ]]; then
                # shellcheck disable=SC2206
                matches=($tok)
                [ ${#matches[@]} -gt 0 ] || { echo "FAIL: $doc: \`$tok\` matches no file"; status=1; }
            elif [ ! -e "${tok%%#*}" ]; then
                echo "FAIL: $doc: \`$tok\` does not exist"
                status=1
            elif [[ $tok == *.md#* ]] && ! has_anchor "${tok%%#*}" "${tok#*#}"; then
                echo "FAIL: $doc: \`$tok\`: no heading with that anchor"
                status=1
            fi
        fi
    done < <(grep -o '`[^`]\+`' "$doc" | tr -d '`' | sort -u)
    # 2. relative links
    while IFS= read -r link; do
        target=${link%%#*}
        case $target in ''|http://*|https://*|mailto:*) continue ;; esac
        [ -e "$dir/$target" ] || { echo "FAIL: $doc: link ($link) does not resolve"; status=1; continue; }
        if [[ $link == *.md#* ]] && ! has_anchor "$dir/$target" "${link#*#}"; then
            echo "FAIL: $doc: link ($link): no heading with that anchor"
            status=1
        fi
    done < <(grep -o '](\([^)]*\))' "$doc" | sed 's/^](//; s/)$//' | sort -u)
done

# A broken extraction must not pass silently: the design names far more paths.
if [ "$checked_design" -lt 40 ]; then
    echo "FAIL: only $checked_design paths found in $design (expected at least 40): is the extraction broken?"
    status=1
fi

# 3. public headers named in the design
n_headers=0
while IFS= read -r h; do
    h=${h#./}
    n_headers=$((n_headers + 1))
    grep -qF "\`$h\`" "$design" || { echo "FAIL: public header $h is not named in $design"; status=1; }
done < <(find . -path './build*' -prune -o -path './.git' -prune -o -path '*/include/*' -name '*.h' -print | sort)
[ "$n_headers" -gt 0 ] || { echo "FAIL: no public headers found under $src"; status=1; }

[ $status -eq 0 ] && echo "ok: $checked_design paths in $design, the paths and links of docs/specs/*.md, $n_headers public headers"
exit $status
