#!/usr/bin/env bash
# Measures everything BENCHMARKS.md shows, in one sitting, and writes it:
# the criterion benches three times over (the report takes each figure's
# median over the runs, so that one disturbed run on a shared machine does
# not decide a ratio), the layer's loopback load test, the chart, the
# instruction counts of benches/instructions.sh (where valgrind is
# installed) and the heap a suspended scope holds.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c "import matplotlib" 2>/dev/null || python3 -m pip install -q matplotlib

runs=${BENCH_RUNS:-3}
baselines=()
for run in $(seq 1 "$runs"); do
    echo "== criterion, run $run of $runs" >&2
    cargo bench -p stackholm-benches --bench engine --bench logging --bench propagation -- \
        --save-baseline "run$run" --noplot >&2
    baselines+=("run$run")
done
echo "== layer load test" >&2
cargo bench -p stackholm-benches --bench layer >&2

out=BENCHMARKS.md.new
{
    echo "# Benchmarks"
    echo
    echo "Measured by \`bash benches/run.sh\` in one sitting on $(date -u +%Y-%m-%d),"
    echo "on a machine with $(nproc) cores ($(uname -m)); the figures are the results"
    echo "of that sitting, not a history. Wall-clock figures are criterion medians,"
    echo "each the median of $runs runs (the layer's, interleaved rounds instead: see"
    echo "below); on a shared machine they move by tens of per"
    echo "cent between sittings, so ratios between implementations measured in the"
    echo "same sitting are what to compare. Instruction counts (callgrind) do not"
    echo "drift with the machine's load. The workloads and the alternatives are in"
    echo "\`benches/src/lib.rs\`, each alternative given its best shot."
    echo
    python3 benches/report.py --baselines "$(IFS=,; echo "${baselines[*]}")"
    echo
    echo "### Layer cost per request, in process"
    echo
    echo "Each request carries a request id and a user in two headers; each app but"
    echo "\`plain\`, \`pass-through\` and \`layer\` (an empty root) puts them in a context"
    echo "of two \`String\`s and the handler reads both (\`benches/src/carry.rs\`)."
    echo "Measured interleaved by \`benches/wall.sh\`, which says why; the criterion group"
    echo "\`layer_per_request\` times these apps among others."
    echo
    bash benches/wall.sh
    if command -v valgrind >/dev/null; then
        echo
        echo "### Instructions"
        echo
        bash benches/instructions.sh
    fi
    echo
    echo "### Heap"
    echo
    cargo run --release -q -p stackholm-benches --example heap
} > "$out"
mv "$out" BENCHMARKS.md
echo "== BENCHMARKS.md written" >&2
