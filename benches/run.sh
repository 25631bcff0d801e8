#!/usr/bin/env bash
# Measures everything BENCHMARKS.md shows, in one go:
# the criterion benches three times over (the report takes each figure's
# median over the runs, so that one disturbed run on a shared machine does
# not decide a ratio), the layer's loopback load test, the report, and the
# instruction counts of benches/instructions.sh where valgrind is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-3}
baselines=()
for run in $(seq 1 "$runs"); do
    echo "== criterion, run $run of $runs" >&2
    cargo bench -p stackholm-benches --bench engine -- --save-baseline "run$run" --noplot >&2
    baselines+=("run$run")
done
echo "== layer load test" >&2
cargo bench -p stackholm-benches --bench layer >&2
python3 benches/report.py --baselines "$(IFS=,; echo "${baselines[*]}")"
echo
echo "### Heap"
echo
cargo run --release -q -p stackholm-benches --example heap
if command -v valgrind >/dev/null; then
    echo
    echo "### Instructions"
    echo
    bash benches/instructions.sh
fi
