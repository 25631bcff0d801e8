#!/usr/bin/env bash
# Counts the instructions each workload takes, under callgrind: figures that
# do not drift with the machine's load, unlike wall-clock ones. Each is
# (instructions for 2n runs - instructions for n runs) / n, so start-up
# cancels out. Needs valgrind (and jq). Prints Markdown tables; exits
# non-zero, saying why, where a count cannot be taken.
set -euo pipefail
# A count that fails inside $(...) must stop the script, not print a 0.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

die() {
    echo "instructions.sh: $*" >&2
    exit 1
}

command -v valgrind >/dev/null || die "valgrind is not installed: no instruction can be counted"
command -v jq >/dev/null || die "jq is not installed: cannot read where cargo put the count example"

example() { # PACKAGE EXAMPLE: builds it, says where it is
    # Where cargo put it, whatever CARGO_TARGET_DIR or the configuration
    # says, rather than a guessed target/release.
    local bin
    bin=$(cargo build --release -q -p "$1" --example "$2" --message-format=json |
        jq -r --arg name "$2" 'select(.reason == "compiler-artifact" and .target.name == $name
            and (.target.kind | index("example"))) | .executable // empty')
    [[ -x $bin ]] || die "cargo built no $2 example of $1 (got \`$bin')"
    echo "$bin"
}

bin=$(example stackholm-benches count)

count() { # WORKLOAD/IMPLEMENTATION N
    local out collected
    out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1) ||
        die "$bin $1 $2 failed under valgrind:"$'\n'"$out"
    collected=$(awk '/Collected/ { print $4 }' <<<"$out")
    [[ $collected =~ ^[0-9]+$ && $collected -gt 0 ]] ||
        die "no instruction count for $1 $2 (got \`$collected'):"$'\n'"$out"
    echo "$collected"
}

ratio() { # A B: A / B to two decimals
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

percent() { # A B: how much more A is than B, in per cent to one decimal
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (a - b) * 100 / b }'
}

per_run() { # WORKLOAD/IMPLEMENTATION N
    local once twice
    once=$(count "$1" "$2")
    twice=$(count "$1" $(($2 * 2)))
    ((twice > once)) || die "$1: $(($2 * 2)) runs took no more instructions than $2 ($twice, $once)"
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
# Each app's figure taken once, for both tables below.
declare -A in_process
apps=(pass-through task-local task-local-no-body opentelemetry extensions layer stackholm-seeded request-id request-id-made request-id-tower-http request-id-made-tower-http request-id-floor)
for name in plain "${apps[@]}"; do
    in_process[$name]=$(per_run "in_process/$name" 2000)
done
loopback_plain=$(per_run loopback/plain 500)
loopback_layer=$(per_run loopback/layer 500)
echo "| per request | plain | pass-through layer | with the layer |"
echo "|---|---:|---:|---:|"
echo "| in process | ${in_process[plain]} | ${in_process[pass-through]} | ${in_process[layer]} |"
echo "| loopback, client and server, user space | $loopback_plain | — | $loopback_layer |"
echo
echo 'Per-request context in process, over plain axum: each request carries'
echo '`x-request-id` and `x-user`; a middleware puts them in a context of two'
echo '`String`s and the handler reads both, answering "hello" only if they are the'
echo "request's (\`context_apps\`, \`benches/src/carry.rs\`). \`layer\` is \`StackholmLayer\`"
echo 'with an empty root and a handler that reads nothing; `request-id` and `request-id-made` add'
echo '`.request_id(..)` to it, the id taken from the request or made (`request_id_apps`); the'
echo '`tower-http` ones do the same with tower-http'"'"'s `SetRequestIdLayer` and'
echo '`PropagateRequestIdLayer` around the layer and a seed copying the id into the root;'
echo '`request-id-floor` only sets a `String` made from a counter in the root and puts a constant'
echo 'header on the response, a bound from below on any made id.'
echo
echo "| app | instructions per request | over plain | over \`layer\` |"
echo "|---|---:|---:|---:|"
for name in "${apps[@]}"; do
    label=$name
    [[ $name == layer ]] && label="layer (empty root)"
    echo "| $label | ${in_process[$name]} | $(printf '%+d' $((in_process[$name] - in_process[plain]))) | $(printf '%+d' $((in_process[$name] - in_process[layer]))) |"
done
echo
log_stackholm=$(per_run log_request/stackholm-tracing 2000)
log_span=$(per_run log_request/span 2000)
echo "| logging a request (3 polls, an event each, 3 context fields) | stackholm-tracing | a span per request |"
echo "|---|---:|---:|"
echo "| instructions | $log_stackholm | $log_span |"
echo
snapshot_fresh=$(per_run snapshot/0 2000)
snapshot_seen=$(per_run snapshot/10000 2000)
echo "| a snapshot of one inherited value (every \`inherit\`) | 0 other keys used before | 10,000 |"
echo "|---|---:|---:|"
echo "| instructions | $snapshot_fresh | $snapshot_seen |"
echo
checkpoint_get=$(per_run checkpoint_get/stackholm 2000)
checkpoint_len=$(per_run checkpoint_len/stackholm 2000)
read_owned=$(per_run read_nearest/stackholm-owned 2000)
echo "| a checkpoint of 5 values, not entered | \`get\` of the 5th (a look at each tag) | \`len\` | a read on a stack (read_nearest, owned) |"
echo "|---|---:|---:|---:|"
echo "| instructions | $checkpoint_get | $checkpoint_len | $read_owned |"
echo
bin=$(cargo bench -p stackholm-benches --bench propagation --no-run 2>&1 |
    sed -n 's/.*Executable .*(\(.*\))$/\1/p')
[[ -x $bin ]] || die "cargo built no propagation bench (got \`$bin')"
requests_stackholm=$(per_run requests/stackholm 2000)
requests_checkpoint=$(per_run requests/stackholm-checkpoint 2000)
requests_opentelemetry=$(per_run requests/opentelemetry 2000)
requests_stackholm_map=$(per_run requests/stackholm-hashmap 2000)
requests_opentelemetry_map=$(per_run requests/opentelemetry-hashmap 2000)
echo "The stackholm side below sets the incoming headers' declared values in the root of"
echo "the request's scope with \`Propagation::extract_into\`, as \`StackholmLayer\`'s seed and"
echo "a consumer in its own scope do; through a checkpoint read with \`extract\` first, then"
echo "entered, it takes $requests_checkpoint."
echo
echo "| a request's context in and out (6 baggage members, 2 headers) | stackholm | opentelemetry | ratio |"
echo "|---|---:|---:|---:|"
echo "| \`http::HeaderMap\` | $requests_stackholm | $requests_opentelemetry | $(ratio "$requests_opentelemetry" "$requests_stackholm") |"
echo "| \`HashMap<String, String>\` | $requests_stackholm_map | $requests_opentelemetry_map | $(ratio "$requests_opentelemetry_map" "$requests_stackholm_map") |"
echo
# The gRPC example's own counting example: the benches crate needs no
# tonic. A call's count moves by a few hundred instructions between runs
# (glibc's malloc): 1000 calls, not 500, to halve that in the figures.
bin=$(example grpc calls)
grpc_plain=$(per_run unary/plain 1000)
grpc_metadata=$(per_run unary/metadata 1000)
grpc_stackholm=$(per_run unary/stackholm 1000)
echo "A unary gRPC call from a tonic client to a tonic server on 127.0.0.1, both on one"
echo "current-thread runtime (\`examples/grpc/examples/calls.rs\`): plain, and with the"
echo "server behind \`StackholmLayer\` seeded by a \`Propagation\` of a request id and a"
echo "tenant, the client's channel behind \`PropagateLayer\`, the calls made inside a"
echo "checkpoint holding both and the handler reading both; the reply is the same but"
echo "for the request id the layer echoes on it, which the overhead includes."
echo "Of the overhead, $((grpc_metadata - grpc_plain)) is the two metadata entries on the wire:"
echo "the plain call with them set by hand, and read by nobody, takes $grpc_metadata."
echo
echo "| a unary gRPC call, client and server, user space | plain | with stackholm | overhead | overhead % |"
echo "|---|---:|---:|---:|---:|"
echo "| instructions | $grpc_plain | $grpc_stackholm | $(printf '%+d' $((grpc_stackholm - grpc_plain))) | $(percent "$grpc_stackholm" "$grpc_plain") |"
