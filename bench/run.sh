#!/usr/bin/env bash
# bitparity benchmarks: whole-process timings, each reported as a ratio
# against a baseline measured in the same run (never in unit tests).
#
#   bench/run.sh [--quick] [--bitnet-cpp LLAMA_BENCH] [--llama-cpp LLAMA_BENCH]
#
# 1. tap overhead: `bitparity run` with every tap point compiled in but none
#    selected, against a build with the taps compiled out (BITPARITY_NO_TAPS).
#    Target: <= 1 %.
# 2. tracing cost: `bitparity trace` of every default tap against a plain run.
# 3. threads: the same run on 1 and 2 threads (results are bit-identical).
# 4. compare: `bitparity compare` of two traces of the bench model, as MB/s,
#    and of two synthetic 1 GB traces (target: <= 5 s on 2 cores).
# 5. tokenizer: converting the LLaMA-3 tiktoken vocabulary (when ../shared
#    or $BITPARITY_SHARED_DIR has it); the unit tests only check its output.
# 6. 2B-4T scale (`synth --shape 2b4t`: the exact shapes, I2_S, tied F16
#    embeddings), 2 threads: a STREAM-like read bandwidth of a 4 GiB buffer
#    (bench/stream.c, before and after the decode runs, the best counts),
#    the bytes a decoded token reads (every tensor once: the tied lm_head
#    reads the whole embedding), hence the decode bound; decode tok/s (64
#    tokens after a 16-token prompt), prefill tok/s (128-token prompt) and
#    load time, each with the weights read into memory (--load memory, the
#    default, whose figures the bound is held against) and mapped from the
#    file (--load mmap); peak RSS; tracing a 256-token prompt + 16 decode
#    steps with every default tap (about 1.9 GB) against the logits tap alone
#    (the write throughput), and compare of that trace with a copy (and,
#    once, of two traces just written: the first read). Decode and prefill
#    rates are `run --timings`' clock around the evaluations of whole-process
#    runs (loading is not counted). Ends with the lines
#    bandwidth_gb_s, decode_bound_tok_s, decode_tok_s, prefill_tok_s,
#    decode_fraction_of_bound, decode_fraction_of_paired_bound (each decode
#    run against a stream pass just before it, the median),
#    bandwidth_range_gb_s (the lowest and highest of every stream pass) and
#    bandwidth_level_changed (yes when they differ by more than 1.25x: a
#    shared host changed level, and the headline fraction then holds runs of
#    one level against the other's bound), decode_mmap_tok_s,
#    decode_q8_lm_head_tok_s (decode with the explicit --lm-head q8_0),
#    prefill_mmap_tok_s, trace_write_mb_s, compare_mb_s, compare_fresh_mb_s,
#    disk_write_mb_s (dd of the trace's volume with fsync: its bound).
#    Then decode against the bandwidth of its own second, in one process
#    (bench/decode_paired.c, 24 rounds, 12 with --quick): each round reads
#    every tensor of the loaded model once and decodes 8 tokens; ends with
#    inprocess_low_level and inprocess_high_level (the rounds of each of the
#    host's bandwidth levels: their read GB/s and decode's fraction of the
#    bound; inprocess_one_level when the run saw one),
#    inprocess_bandwidth_gb_s, inprocess_decode_tok_s and
#    decode_fraction_of_inprocess_bound (medians over all rounds).
# 7. side by side (only with --bitnet-cpp / --llama-cpp, the llama-bench
#    binaries of a user's bitnet.cpp and upstream llama.cpp builds): the same
#    synthesized weights, written with --arch bitnet (the name both load;
#    I2_S for bitnet.cpp, TQ2_0 for llama.cpp, both with the tied F16
#    lm_head of bitparity's model), `llama-bench -p 128 -n 32
#    -r 1 -t 2` taking turns with bitparity's prefill and decode runs, each
#    round after its own stream pass. Ends with <engine>_prefill_tok_s,
#    <engine>_decode_tok_s, prefill_vs_<engine>, decode_vs_<engine> (bitparity's
#    rate over the other's, medians of the same rounds) and
#    <engine>_decode_fraction_of_paired_bound, engine = bitnetcpp, llamacpp.
# Each measurement is the median of N whole-process runs (N = 7, 3 with --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() {
  echo "usage: bench/run.sh [--quick] [--bitnet-cpp LLAMA_BENCH] [--llama-cpp LLAMA_BENCH]" >&2
  exit 2
}
reps=7
declare -A others=() # engine -> its llama-bench
while [ $# -gt 0 ]; do
  case $1 in
  --quick) reps=3 ;;
  --bitnet-cpp | --llama-cpp)
    [ $# -ge 2 ] || usage
    [ -x "$2" ] || { echo "bench/run.sh: $1 $2: not an executable llama-bench" >&2; exit 2; }
    if [ "$1" = --bitnet-cpp ]; then others[bitnetcpp]=$2; else others[llamacpp]=$2; fi
    shift ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) usage ;;
  esac
  shift
done
bash ci/bootstrap.sh
jobs=$(nproc)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== building (Release) with and without tap points" >&2
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBITPARITY_TESTS=OFF >/dev/null
cmake --build build-bench -j"$jobs" --target bitparity decode_paired >/dev/null
cmake -S . -B build-bench-notaps -DCMAKE_BUILD_TYPE=Release -DBITPARITY_TESTS=OFF -DBITPARITY_NO_TAPS=ON >/dev/null
cmake --build build-bench-notaps -j"$jobs" --target bitparity >/dev/null
bp=build-bench/bitparity
bp_notaps=build-bench-notaps/bitparity

"$bp" synth --shape bench --type i2_s -o "$out/bench.gguf" 2>/dev/null
prompt=$(seq -s, 1 128)

# median wall time in seconds of `reps` runs of a command; `before`, when
# set, is run (untimed) before each: the trace runs remove the previous run's
# output first, so that replacing (freeing) a 1.9 GB file is not counted as
# writing the new one
median() {
  local times=()
  for _ in $(seq "$reps"); do
    local t0 t1
    if [ -n "${before:-}" ]; then eval "$before"; fi
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    times+=("$(( (t1 - t0) / 1000 ))")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.4f", a[int((NR+1)/2)]/1e6}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.1f %%", (a / b - 1) * 100}'; }

run_args=(run -m "$out/bench.gguf" --tokens "$prompt" -n 32 --temp 0 --threads 2)
base=$(median "$bp_notaps" "${run_args[@]}")
taps=$(median "$bp" "${run_args[@]}")
echo "| benchmark | baseline (s) | measured (s) | ratio |"
echo "|---|---|---|---|"
echo "| unselected taps: run 128+32 tokens, taps compiled in vs out | $base | $taps | $(ratio "$taps" "$base") ($(pct "$taps" "$base")) |"

# Instruction counts are exact and immune to the load of a shared machine:
# the same comparison under callgrind, on a shorter run.
if command -v valgrind >/dev/null; then
  ir() {
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$@" >/dev/null 2>"$out/cg.log"
    grep -o 'Collected : [0-9]*' "$out/cg.log" | awk '{print $3}'
  }
  short=(run -m "$out/bench.gguf" --tokens "$(seq -s, 1 16)" -n 4 --temp 0 --threads 1)
  ir_base=$(ir "$bp_notaps" "${short[@]}")
  ir_taps=$(ir "$bp" "${short[@]}")
  echo "| unselected taps, instructions (callgrind, 16+4 tokens) | $ir_base | $ir_taps | $(ratio "$ir_taps" "$ir_base") ($(pct "$ir_taps" "$ir_base")) |"
fi

trace=$(median "$bp" trace -m "$out/bench.gguf" --tokens "$prompt" --decode 32 --threads 2 -o "$out/t.npz")
echo "| trace every default tap vs plain run | $taps | $trace | $(ratio "$trace" "$taps") |"

one=$(median "$bp" run -m "$out/bench.gguf" --tokens "$prompt" -n 32 --temp 0 --threads 1)
echo "| 2 threads vs 1 thread (speed-up) | $one | $taps | $(ratio "$one" "$taps") |"

if "$bp" --help | grep -q '^  compare'; then
  "$bp" trace -m "$out/bench.gguf" --tokens "$prompt" --decode 32 --threads 2 -o "$out/a.npz" 2>/dev/null
  cp "$out/a.npz" "$out/b.npz"
  mb=$(du -m "$out/a.npz" | cut -f1)
  cmp_t=$(median "$bp" compare "$out/a.npz" "$out/b.npz" --policy exact --threads 2)
  echo "| compare two ${mb} MB traces | - | $cmp_t | $(awk -v m="$mb" -v t="$cmp_t" 'BEGIN {printf "%.0f MB/s per side", m / t}') |"
fi

# Two 1 GB canonical traces (stored members, as `bitparity trace` writes them):
# 64 evaluations x 16 taps of 256 K floats; the second differs by float noise.
if "$bp" --help | grep -q '^  compare'; then
  /usr/bin/python3 - "$out" <<'PY'
import sys, zipfile, numpy as np
out = sys.argv[1]
rng = np.random.default_rng(1)
taps = ['blk.%d.out' % i for i in range(16)]
for name, noise in (('big_a', 0.0), ('big_b', 1e-7)):
    with zipfile.ZipFile('%s/%s.npz' % (out, name), 'w', zipfile.ZIP_STORED, allowZip64=True) as z:
        evals = []
        for k in range(64):
            evals.append('  - {id: e%d, tokens: [%d], p0: %d}' % (k, k + 1, k))
            for t in taps:
                a = np.random.default_rng(k * 100 + taps.index(t)).standard_normal((1, 262144), dtype=np.float32)
                if noise:
                    a = a * np.float32(1 + noise)
                with z.open('e%d/%s.npy' % (k, t), 'w', force_zip64=True) as f:
                    np.lib.format.write_array(f, a)
        z.writestr('meta.yaml', 'trace: bitparity/v1\nlayout: canonical\nproducer: {name: bench}\n'
                   'settings: {numerics: f32}\nevaluations:\n' + '\n'.join(evals) + '\ntaps: [%s]\n' % ', '.join(taps))
PY
  gb=$(du -m "$out/big_a.npz" | cut -f1)
  big=$(median "$bp" compare "$out/big_a.npz" "$out/big_b.npz" --policy cross-backend --threads 2)
  echo "| compare two ${gb} MB traces (target <= 5 s) | - | $big | $(awk -v m="$gb" -v t="$big" 'BEGIN {printf "%.0f MB/s per side", m / t}') |"
fi

shared=${BITPARITY_SHARED_DIR:-../shared}
if [ -f "$shared/tokenizers/llama3/tokenizer.model" ]; then
  conv=$(median "$bp" convert tiktoken "$shared/tokenizers/llama3/tokenizer.model" -o "$out/llama3-vocab.gguf")
  echo "| convert the 128256-token LLaMA-3 tiktoken vocabulary | - | $conv | - |"
fi

# ------------------------------------------------------------ 2B-4T scale --
echo "== 2B-4T scale: synth --shape 2b4t, stream bandwidth" >&2
cmake -S bench -B build-bench-tools -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench-tools -j"$jobs" --target stream >/dev/null
# 4 GiB: well beyond any cache (a 1 GiB buffer read back at up to 3x the
# DRAM rate on these VMs); measured before and after the decode runs, the
# best of both is the bound (a shared host's bandwidth drifts).
stream_bw() { build-bench-tools/stream 2 4096 "${1:-10}" 2>/dev/null | awk '/^bandwidth_gb_s:/ {print $2}'; } # [passes]
# the tok/s of `run --timings`' line for KIND (prompt|decode), from stdin
timing_rate() { sed -n "s/^timings: $1 .*(\([0-9.]*\) tok\/s)\$/\1/p"; }
# the median of whitespace-separated numbers
median_of() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
bw=$(stream_bw)
m2b="$out/2b4t.gguf"
synth_t0=$(date +%s%N)
"$bp" synth --shape 2b4t --type i2_s -o "$m2b" 2>/dev/null
synth_s=$(awk -v a="$synth_t0" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}')
# every tensor is read once per decoded token (token_embd as the tied lm_head);
# with --lm-head q8_0 the tied F16 lm_head is read as Q8_0 (34 bytes per 64)
read -r bytes_tok bytes_tok_q8 < <("$bp" inspect "$m2b" --json | /usr/bin/python3 -c '
import json, sys
t = json.load(sys.stdin)["tensors"]
e = [x["nbytes"] for x in t if x["name"] == "token_embd.weight"][0]
n = sum(x["nbytes"] for x in t)
print(n, n - e + e // 64 * 34)')
gen=(run -m "$m2b" --temp 0 --threads 2 --timings)
p16=$(seq -s, 100 115)
p128=$(seq -s, 100 227)
# Decode and prefill rates come from `run --timings`: a clock inside each
# whole-process run, around the evaluations only. A difference of two
# whole-process times would carry the load time's noise, and here loading
# into memory takes 0.7-3 s from one run to the next (fresh memory faults in
# slowly on these VMs). Both weight placements (--load) are measured, their
# runs alternating: rates[mode,kind] is the median of `reps` runs, spread[mode,kind]
# their range (this host's runs differ by up to a third from minute to minute).
declare -A rates spread
# The decode runs with the weights in memory are each paired with a short
# stream pass just before them (paired_bw): this host's read bandwidth
# drifts by up to 2x from minute to minute (34-68 GB/s in one hour), so the
# decode rate is also held against the bandwidth of its own minute.
paired=""
timing_runs() { # kind (prompt|decode|load) tokens n_predict: one run per mode, alternating, reps times
  local kind=$1 tokens=$2 n=$3 mode log rate pbw
  local -A all=()
  for _ in $(seq "$reps"); do
    for mode in memory mmap; do
      [ "$kind$mode" = decodememory ] && pbw=$(stream_bw 5)
      log=$("$bp" "${gen[@]}" --load "$mode" --tokens "$tokens" -n "$n" 2>&1 >/dev/null)
      if [ "$kind" = load ]; then
        all[$mode]+=" $(sed -n 's/^timings: load \([0-9.]*\) s$/\1/p' <<<"$log")"
      else
        rate=$(timing_rate "$kind" <<<"$log")
        all[$mode]+=" $rate"
        [ "$kind$mode" = decodememory ] && paired+=" $rate/$pbw"
      fi
    done
  done
  for mode in memory mmap; do
    rates[$mode,$kind]=$(median_of "${all[$mode]}")
    spread[$mode,$kind]=$(tr ' ' '\n' <<<"${all[$mode]}" | sed '/^$/d' | sort -g | awk '{v[NR] = $1} END {print v[1] "-" v[NR]}')
  done
}
timing_runs decode "$p16" 65 # 64 decode evaluations after the prompt
# The explicit faster lm_head (--lm-head q8_0: 34 bytes per 32 weights, not
# 64): decode with the weights in memory; not ggml-compat's bits, so never
# the headline figure
q8_rates=""
for _ in $(seq "$reps"); do
  q8_rates+=" $("$bp" "${gen[@]}" --load memory --lm-head q8_0 --tokens "$p16" -n 65 2>&1 >/dev/null |
    timing_rate decode)"
done
decode_q8=$(median_of "$q8_rates")
timing_runs prompt "$p128" 0
timing_runs load 100 0
# Side by side with other engines' llama-bench on the same weights (7.):
# rounds of [stream pass, bitparity decode, the other engine's pp128 + tg32,
# bitparity prefill], so that every figure of a round shares its minute.
sbs_lines=""
for engine in "${!others[@]}"; do
  echo "== side by side: $engine (${others[$engine]})" >&2
  otype=i2_s
  [ "$engine" = llamacpp ] && otype=tq2_0
  "$bp" synth --shape 2b4t --type "$otype" --arch bitnet --embd-type f16 -o "$out/other.gguf" 2>/dev/null
  for _ in $(seq "$reps"); do
    pbw=$(stream_bw 5)
    ours_tg=$("$bp" "${gen[@]}" --tokens "$p16" -n 65 2>&1 >/dev/null | timing_rate decode)
    # llama-bench's Markdown rows: ... | test | t/s | (the t/s as "mean ± sd")
    theirs=$("${others[$engine]}" -m "$out/other.gguf" -p 128 -n 32 -r 1 -t 2 2>/dev/null |
      awk -F'|' '{for (i = 2; i < NF; i++) if ($i ~ /^ *(pp128|tg32) *$/) {
                   t = $i; gsub(/ /, "", t); split($(i + 1), v, "±"); gsub(/ /, "", v[1]); r[t] = v[1]}}
                 END {print r["pp128"], r["tg32"]}')
    read -r their_pp their_tg <<<"$theirs"
    [ -n "${their_tg:-}" ] || { echo "bench/run.sh: ${others[$engine]} printed no pp128/tg32 rows for $out/other.gguf" >&2; exit 3; }
    ours_pp=$("$bp" "${gen[@]}" --tokens "$p128" -n 0 2>&1 >/dev/null | timing_rate prompt)
    sbs_lines+="$engine $pbw $ours_pp $ours_tg $their_pp $their_tg"$'\n'
  done
  rm -f "$out/other.gguf"
done
# peak RSS of the decode run, weights in memory (mapped weights count as
# they are read: the same size)
rss_kb=$(/usr/bin/python3 -c '
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$bp" "${gen[@]}" --load memory --tokens "$p16" -n 64)
bw2=$(stream_bw)
bw_passes="$bw $bw2" # every stream figure of the run, for the level check below
bw=$(awk -v a="$bw" -v b="$bw2" 'BEGIN {print (a > b ? a : b)}')
# Tracing every default tap of a 256-token prompt + 16 decode steps (about
# 1.9 GB), against the same trace of the logits tap alone: both hash the
# model and compute every position's logits, so the difference is the cost
# of writing the other taps (gathering, CRC, the page-cache copy, the
# fsync at commit). Then `compare` of the whole trace with a copy. The
# traces map the model (--load mmap): reading it into memory takes 0.2-3 s
# from one run to the next here, noise that swamped the difference.
p256=$(seq -s, 100 355)
# The disk's own rate for the same volume, as a trace commit writes it
# (through the page cache, then fsync): the bound of the trace write below.
dd_t0=$(date +%s%N)
dd if=/dev/zero of="$out/dd.bin" bs=1M count=1900 conv=fsync status=none
disk_mb_s=$(awk -v a="$dd_t0" -v b="$(date +%s%N)" 'BEGIN {printf "%.0f", 1900 * 1.048576 / ((b - a) / 1e9)}')
rm -f "$out/dd.bin"
tr_all=$(before='rm -f "$out/t2b.npz"; sync' median "$bp" trace -m "$m2b" --load mmap --tokens "$p256" --decode 16 --threads 2 \
  -o "$out/t2b.npz")
tr_lg=$(before='rm -f "$out/t2b-logits.npz"; sync' median "$bp" trace -m "$m2b" --load mmap --tokens "$p256" --decode 16 \
  --threads 2 --taps logits -o "$out/t2b-logits.npz")
# The pipeline a user runs: `compare` of two traces just written, timed once
# before anything else has read them (a writer that bypassed the page cache
# would make this read come from the disk), then the copy.
"$bp" trace -m "$m2b" --load mmap --tokens "$p256" --decode 16 --threads 2 -o "$out/t2b-again.npz" >/dev/null 2>&1
fresh_t0=$(date +%s%N)
"$bp" compare "$out/t2b.npz" "$out/t2b-again.npz" --policy exact --threads 2 >/dev/null 2>&1
cmp_fresh_t=$(awk -v a="$fresh_t0" -v b="$(date +%s%N)" 'BEGIN {printf "%.4f", (b - a) / 1e9}')
rm -f "$out/t2b-again.npz"
cp "$out/t2b.npz" "$out/t2b-copy.npz"
tr_mb=$(( $(stat -c %s "$out/t2b.npz") / 1000000 ))
lg_mb=$(( $(stat -c %s "$out/t2b-logits.npz") / 1000000 ))
cmp2_t=$(median "$bp" compare "$out/t2b.npz" "$out/t2b-copy.npz" --policy exact --threads 2)
rm -f "$out/t2b.npz" "$out/t2b-copy.npz" "$out/t2b-logits.npz"
/usr/bin/python3 - "$bw" "$bytes_tok" "${rates[memory,decode]}" "${rates[mmap,decode]}" "${rates[memory,prompt]}" \
  "${rates[mmap,prompt]}" "${rates[memory,load]}" "${rates[mmap,load]}" "$rss_kb" "$tr_mb" "$tr_all" "$cmp2_t" \
  "$synth_s" "$lg_mb" "$tr_lg" "$cmp_fresh_t" "${spread[memory,decode]}" "${spread[mmap,decode]}" \
  "${spread[memory,prompt]}" "${spread[mmap,prompt]}" "$disk_mb_s" "$paired" "$decode_q8" "$bytes_tok_q8" \
  "$bw_passes" <<'PY'
import statistics, sys
(bw, bytes_tok, decode, decode_mmap, prefill, prefill_mmap, load_mem, load_mmap, rss_kb, tr_mb, tr_t, cmp_t, synth_s,
 lg_mb, lg_t, fresh_t) = map(float, sys.argv[1:17])
sp_decode, sp_decode_mmap, sp_prefill, sp_prefill_mmap = sys.argv[17:21]
disk_mb_s = float(sys.argv[21])
# each decode run (weights in memory) against the bound of its own minute
pairs = [tuple(map(float, p.split('/'))) for p in sys.argv[22].split()]
paired_fracs = sorted(rate / (pbw * 1e9 / bytes_tok) for rate, pbw in pairs)
paired_frac = statistics.median(paired_fracs)
paired_bws = sorted(pbw for _, pbw in pairs)
decode_q8, bytes_tok_q8 = float(sys.argv[23]), float(sys.argv[24])
# every stream figure of the run (before, after, before each paired run):
# on a shared host the bandwidth can change level between them (33-38 and
# 60-65 GB/s on the CI kind of VM), and then the headline fraction holds
# decode runs of one level against the bound of the other
all_bws = sorted([float(x) for x in sys.argv[25].split()] + paired_bws)
bw_lo, bw_hi = all_bws[0], all_bws[-1]
level_changed = bw_hi > 1.25 * bw_lo
bound_q8 = bw * 1e9 / bytes_tok_q8
write_s = tr_t - lg_t
write_rate = f"{(tr_mb - lg_mb) / write_s:.0f} MB/s" if write_s > 0 else "within the noise (no measurable cost)"
bound = bw * 1e9 / bytes_tok
print()
print("| 2B-4T shape (synth, I2_S, tied F16 lm_head), 2 threads | value |")
print("|---|---:|")
print(f"| synth --shape 2b4t (write {bytes_tok / 1e9:.2f} GB) | {synth_s:.1f} s |")
print(f"| read bandwidth (stream, 2 threads, best of 10) | {bw:.2f} GB/s |")
print(f"| every stream pass of the run (before, after, before each paired decode run) | {bw_lo:.2f}-{bw_hi:.2f} GB/s{' (the host changed bandwidth level during the run: read decode against the paired bound)' if level_changed else ''} |")
print(f"| bytes read per decoded token | {bytes_tok / 1e9:.3f} GB |")
print(f"| decode bound (bandwidth / bytes per token) | {bound:.2f} tok/s |")
print(f"| decode, 64 tokens after a 16-token prompt (--load memory, the default) | {decode:.2f} tok/s ({decode / bound:.2f} of the bound; runs {sp_decode}) |")
print(f"| each of those runs against a stream pass just before it (bandwidth {paired_bws[0]:.1f}-{paired_bws[-1]:.1f} GB/s) | median {paired_frac:.2f} of its bound (runs {paired_fracs[0]:.2f}-{paired_fracs[-1]:.2f}) |")
print(f"| the same, weights mapped from the file (--load mmap) | {decode_mmap:.2f} tok/s ({decode_mmap / bound:.2f} of the bound; runs {sp_decode_mmap}) |")
print(f"| decode with --lm-head q8_0 (explicit, not ggml-compat; {bytes_tok_q8 / 1e9:.3f} GB per token) | {decode_q8:.2f} tok/s ({decode_q8 / bound_q8:.2f} of its bound, {decode_q8 / decode:.2f}x the F16 lm_head) |")
print(f"| prefill, 128-token prompt (--load memory) | {prefill:.2f} tok/s (runs {sp_prefill}) |")
print(f"| the same, --load mmap | {prefill_mmap:.2f} tok/s (runs {sp_prefill_mmap}) |")
print(f"| loading the model: --load memory / --load mmap | {load_mem:.2f} s / {load_mmap:.2f} s |")
print(f"| peak RSS of the decode run (--load memory) | {rss_kb / 1024:.0f} MiB |")
print(f"| trace every default tap, 256 + 16 tokens ({tr_mb:.0f} MB), whole process | {tr_t:.2f} s ({tr_mb / tr_t:.0f} MB/s) |")
print(f"| the same, logits tap only ({lg_mb:.0f} MB) | {lg_t:.2f} s |")
print(f"| trace write throughput (the other {tr_mb - lg_mb:.0f} MB over the time they add) | {write_rate} |")
print(f"| the disk: dd of 1900 MiB with fsync, as a trace commit writes | {disk_mb_s:.0f} MB/s |")
print(f"| compare that trace with a copy | {tr_mb / cmp_t:.0f} MB/s per side ({cmp_t:.2f} s) |")
print(f"| compare two traces just written (their first read) | {tr_mb / fresh_t:.0f} MB/s per side ({fresh_t:.2f} s) |")
print()
print(f"bandwidth_gb_s: {bw:.2f}")
print(f"decode_bound_tok_s: {bound:.2f}")
print(f"decode_tok_s: {decode:.2f}")
print(f"prefill_tok_s: {prefill:.2f}")
print(f"decode_fraction_of_bound: {decode / bound:.3f}")
print(f"decode_fraction_of_paired_bound: {paired_frac:.3f}")
print(f"bandwidth_range_gb_s: {bw_lo:.2f} {bw_hi:.2f}")
print(f"bandwidth_level_changed: {'yes' if level_changed else 'no'}")
print(f"decode_mmap_tok_s: {decode_mmap:.2f}")
print(f"decode_q8_lm_head_tok_s: {decode_q8:.2f}")
print(f"prefill_mmap_tok_s: {prefill_mmap:.2f}")
print(f"trace_write_mb_s: {(tr_mb - lg_mb) / write_s:.0f}" if write_s > 0 else "trace_write_mb_s: inf")
print(f"compare_mb_s: {tr_mb / cmp_t:.0f}")
print(f"compare_fresh_mb_s: {tr_mb / fresh_t:.0f}")
print(f"disk_write_mb_s: {disk_mb_s:.0f}")
PY
# Decode against the read bandwidth of its own second, in one process
# (bench/decode_paired.c): rounds of [every tensor of the loaded model read
# once, 8 decoded tokens at the positions of the decode runs above], split
# by the host's bandwidth level. The stream passes above are other
# processes, and this host changes level between them.
echo "== 2B-4T decode against the bandwidth of its own second (decode_paired)" >&2
dp_rounds=24
[ "$reps" -lt 7 ] && dp_rounds=12
dp=$(build-bench/bench/decode_paired "$m2b" "$dp_rounds" 8 2)
dp_value() { sed -n "s/^$1: //p" <<<"$dp"; }
echo
echo "| decode against the read of its own second, one process ($dp_rounds rounds of 8 tokens) | value |"
echo "|---|---:|"
for level in low high one; do
  v=$(dp_value "inprocess_${level}_level")
  [ "$level" = one ] && what="every round at one bandwidth level (no change seen)" ||
    what="rounds at the host's $level bandwidth level"
  [ -n "$v" ] && echo "| $what | $v |"
done
read -r dp_lo dp_hi <<<"$(dp_value decode_fraction_of_inprocess_bound_range)"
echo "| every round | median $(dp_value decode_fraction_of_inprocess_bound) of its bound (rounds $dp_lo-$dp_hi) |"
echo
grep -E '^(decode_fraction_of_inprocess_bound|inprocess_(low|high|one)_level|inprocess_bandwidth_gb_s|inprocess_decode_tok_s):' <<<"$dp"
if [ -n "$sbs_lines" ]; then
  /usr/bin/python3 - "$bytes_tok" "$sbs_lines" <<'PY'
import statistics, sys
bytes_tok = float(sys.argv[1])
rounds = {}
for line in sys.argv[2].split("\n"):
    if line.strip():
        e, *v = line.split()
        rounds.setdefault(e, []).append(tuple(map(float, v)))
names = {"bitnetcpp": "bitnet.cpp (I2_S)", "llamacpp": "llama.cpp (TQ2_0)"}
med = statistics.median
print()
print("| side by side, same weights, 2 threads, rounds taking turns | prefill tok/s (128) | decode tok/s | decode / paired bound |")
print("|---|---:|---:|---:|")
out = []
for e, rs in sorted(rounds.items()):
    bw, opp, otg, tpp, ttg = (list(c) for c in zip(*rs))
    frac = lambda tg: med([r / (b * 1e9 / bytes_tok) for r, b in zip(tg, bw)])
    print(f"| {names[e]}, {len(rs)} rounds (stream {min(bw):.1f}-{max(bw):.1f} GB/s) | {med(tpp):.2f} | {med(ttg):.2f} | {frac(ttg):.2f} |")
    print(f"| bitparity, the same rounds | {med(opp):.2f} ({med(opp) / med(tpp):.2f}x) | {med(otg):.2f} ({med(otg) / med(ttg):.2f}x) | {frac(otg):.2f} |")
    out += [f"{e}_prefill_tok_s: {med(tpp):.2f}", f"{e}_decode_tok_s: {med(ttg):.2f}",
            f"prefill_vs_{e}: {med(opp) / med(tpp):.3f}", f"decode_vs_{e}: {med(otg) / med(ttg):.3f}",
            f"{e}_decode_fraction_of_paired_bound: {frac(ttg):.3f}"]
print()
print("\n".join(out))
PY
fi
