#!/usr/bin/env bash
# Wall-clock time of a request in process under axum, for each app of the
# per-request context table, measured interleaved: round after round, each
# app runs the same number of requests in turn, and each app's figure over
# plain is the median over rounds of that round's ratio. A shared machine's
# speed drifts over minutes, so apps measured one after the other (as
# criterion's groups are) can differ by more than what they cost; in one
# round they see the same machine. Needs jq. Prints a Markdown table.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

die() {
    echo "wall.sh: $*" >&2
    exit 1
}

command -v jq >/dev/null || die "jq is not installed: cannot read where cargo put the count example"
bin=$(cargo build --release -q -p stackholm-benches --example count --message-format=json |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "count"
        and (.target.kind | index("example"))) | .executable // empty')
[[ -x $bin ]] || die "cargo built no count example (got \`$bin')"

apps="plain pass-through task-local task-local-no-body opentelemetry extensions layer stackholm-seeded"
rounds=${WALL_ROUNDS:-7}
requests=${WALL_REQUESTS:-300000}
times=$(mktemp)
trap 'rm -f "$times"' EXIT
for round in $(seq 1 "$rounds"); do
    for app in $apps; do
        start=$(date +%s%N)
        "$bin" "in_process/$app" "$requests" || die "in_process/$app failed"
        end=$(date +%s%N)
        echo "$round $app $((end - start))" >>"$times"
    done
done
python3 - "$times" "$requests" $apps <<'PY'
import collections, statistics, sys
path, requests, apps = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
by_round = collections.defaultdict(dict)
for line in open(path):
    round_, app, ns = line.split()
    by_round[round_][app] = int(ns) / requests
print("| app | per request (µs), median | ÷ plain, median of the rounds' |")
print("|---|---:|---:|")
for app in apps:
    ns = statistics.median(r[app] for r in by_round.values())
    ratio = statistics.median(r[app] / r["plain"] for r in by_round.values())
    print(f"| {app} | {ns / 1000:.2f} | {ratio:.2f}× |")
print(f"\n{len(by_round)} rounds of {requests:,} requests an app, interleaved.")
PY
