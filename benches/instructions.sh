#!/usr/bin/env bash
# Counts the instructions each workload takes, under callgrind: figures that
# do not drift with the machine's load, unlike wall-clock ones. Each is
# (instructions for 2n runs - instructions for n runs) / n, so start-up
# cancels out. Needs valgrind. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p stackholm-benches --example count
bin=target/release/examples/count

count() { # WORKLOAD/IMPLEMENTATION N
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        awk '/Collected/ { print $4 }'
}

per_run() { # WORKLOAD/IMPLEMENTATION N
    local once twice
    once=$(count "$1" "$2")
    twice=$(count "$1" $(($2 * 2)))
    echo $(((twice - once) / $2))
}

impls="stackholm-owned stackholm-thread stackholm-task naive-stack naive-dyn-stack clone-map opentelemetry task-local-map"
echo "| workload | ${impls// / | } |"
echo "|---|$(for _ in $impls; do printf -- '---:|'; done)"
for workload in enter_set_leave read_nearest request_like; do
    row="| $workload |"
    for impl in $impls; do
        row="$row $(per_run "$workload/$impl" 2000) |"
    done
    echo "$row"
done
echo
echo 'The floor of any layer that wraps the response body under axum: `pass-through`,'
echo 'a layer whose body passes every frame through (`benches/src/lib.rs`).'
echo
echo "| per request | plain | pass-through layer | with the layer |"
echo "|---|---:|---:|---:|"
echo "| in process | $(per_run in_process/plain 2000) | $(per_run in_process/pass-through 2000) | $(per_run in_process/layer 2000) |"
echo "| loopback, client and server, user space | $(per_run loopback/plain 500) | — | $(per_run loopback/layer 500) |"
echo
echo "| logging a request (3 polls, an event each, 3 context fields) | stackholm-tracing | a span per request |"
echo "|---|---:|---:|"
echo "| instructions | $(per_run log_request/stackholm-tracing 2000) | $(per_run log_request/span 2000) |"
echo
echo "| a snapshot of one inherited value (every \`inherit\`) | 0 other keys used before | 10,000 |"
echo "|---|---:|---:|"
echo "| instructions | $(per_run snapshot/0 2000) | $(per_run snapshot/10000 2000) |"
echo
bin=$(cargo bench -p stackholm-benches --bench propagation --no-run 2>&1 |
    sed -n 's/.*Executable .*(\(.*\))$/\1/p')
echo "The stackholm side below reads the incoming headers with \`Propagation::extract\`, the"
echo "path of servers that are not tower services, into a checkpoint it then enters."
echo
echo "| a request's context in and out (6 baggage members, 2 headers) | stackholm | opentelemetry |"
echo "|---|---:|---:|"
echo "| instructions | $(per_run requests/stackholm 2000) | $(per_run requests/opentelemetry 2000) |"
