#!/usr/bin/env bash
# A `perf record -F 10000` profile as inclusive microseconds per spawn, per symbol.
# usage: perf_us.sh DATA NSPAWNS [TOP]   (NSPAWNS: every spawn the recorded program made)
set -euo pipefail
data=$1 n=$2 top=${3:-45}
perf report -i "$data" --no-children -g none --stdio --sort dso 2>/dev/null | grep -E "^ +[0-9]" | head -6
total=$(perf script -i "$data" -F period 2>/dev/null | wc -l)
awk -v n="$n" -v t="$total" 'BEGIN { printf "%d samples = %.1f us per spawn\n", t, t * 100 / n }'
perf report -i "$data" --children -g none --stdio -F overhead_children,sym 2>/dev/null | grep -E "^ +[0-9]" |
    awk -v n="$n" -v t="$total" '{ p = $1; sub("%", "", p); $1 = ""; printf "%7.1f us %s\n", p / 100 * t * 100 / n, $0 }' |
    sort -rn | head -"$top"
