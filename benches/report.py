#!/usr/bin/env python3
"""Turns criterion's output into BENCHMARKS.md's wall-clock part and chart.

Reads the medians under target/criterion (from
`cargo bench -p stackholm-benches --bench engine`; with --baselines, the
median over several saved runs, as benches/run.sh makes them) and, if present,
target/layer-bench.json (from `--bench layer`); prints the Markdown of the
figures and of the ratios the targets are stated in, and draws
docs/benchmarks.svg with matplotlib.

    python3 benches/report.py [--baselines run1,run2,run3] [--target-dir target]
                              [--svg docs/benchmarks.svg]
"""

import argparse
import json
import pathlib
import statistics
import sys

IMPLS = [
    ("stackholm-owned", "stackholm owned"),
    ("stackholm-thread", "stackholm thread"),
    ("stackholm-task", "stackholm task"),
    ("naive-stack", "naive stack"),
    ("naive-dyn-stack", "naive stack, dyn values"),
    ("clone-map", "clone map"),
    ("opentelemetry", "OpenTelemetry"),
    ("task-local-map", "task-local map"),
]
FLOORS = {"enter_set_leave": "floor-push-pop", "read_nearest": "floor-vec-index"}
STACKHOLM = IMPLS[:3]
ALTERNATIVES = IMPLS[3:]


def load(target, baselines):
    """{(group, function, value): median ns}, the median over `baselines`
    (criterion's saved runs) of each run's median."""
    runs = {}
    for baseline in baselines:
        for bench in (target / "criterion").glob(f"**/{baseline}/benchmark.json"):
            meta = json.loads(bench.read_text())
            estimates = json.loads((bench.parent / "estimates.json").read_text())
            key = (meta["group_id"], meta["function_id"], meta.get("value_str") or "")
            runs.setdefault(key, []).append(estimates["median"]["point_estimate"])
    return {key: statistics.median(values) for key, values in runs.items()}


def fmt(ns):
    return "—" if ns is None else (f"{ns:.1f}" if ns < 100 else f"{ns:.0f}")


def rows(medians):
    """The workloads of the table, in order, with their figures."""
    order = ["enter_leave", "enter_set_leave", "read_nearest", "set_remove_nearest", "request_like"]
    seen = sorted({(g, v) for (g, _, v) in medians if g in order})
    seen.sort(key=lambda gv: (order.index(gv[0]), gv[1]))
    for group, value in seen:
        figures = [medians.get((group, impl, value)) for impl, _ in IMPLS]
        floor = medians.get((group, FLOORS.get(group, ""), value))
        yield group, value, figures, floor


def markdown(medians):
    out = ["| workload | " + " | ".join(name for _, name in IMPLS) + " | floor |",
           "|---|" + "---:|" * (len(IMPLS) + 1)]
    for group, value, figures, floor in rows(medians):
        cells = [f"**{fmt(f)}**" if i < len(STACKHOLM) and f is not None else fmt(f)
                 for i, f in enumerate(figures)]
        out.append(f"| {group} {value} | " + " | ".join(cells) + f" | {fmt(floor)} |")
    return "\n".join(out)


def targets(medians):
    """The issue's targets, one line per stackholm storage each."""
    m = lambda g, i, v: medians.get((g, i, v))
    lines = ["| target | " + " | ".join(name for _, name in STACKHOLM) + " |",
             "|---|" + "---:|" * len(STACKHOLM)]

    def row(label, ratio, goal, better_when_low=True):
        cells = []
        for impl, _ in STACKHOLM:
            r = ratio(impl)
            if r is None:
                cells.append("—")
                continue
            met = r <= goal if better_when_low else r >= goal
            cells.append(f"{r:.2f}× {'✓' if met else '✗'}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    deep = "depth-100/50-others"
    row("read depth 100 ÷ read depth 1, 50 keys each (≤ 1.5)",
        lambda i: div(m("read_nearest", i, deep), m("read_nearest", i, "depth-1/50-others")), 1.5)
    row("read depth 100, 50 keys ÷ read depth 1, no other key (≤ 1.5)",
        lambda i: div(m("read_nearest", i, deep), m("read_nearest", i, "depth-1/0-others")), 1.5)
    row("read depth 100, 50 keys ÷ OpenTelemetry's (≤ 1)",
        lambda i: div(m("read_nearest", i, deep), m("read_nearest", "opentelemetry", deep)), 1.0)
    row("read depth 100, 50 keys ÷ Vec index floor (≤ 4)",
        lambda i: div(m("read_nearest", i, deep), m("read_nearest", "floor-vec-index", deep)), 4.0)
    present = "50-present"
    row("OpenTelemetry's enter+set+leave ÷ ours, 50 values (≥ 10)",
        lambda i: div(m("enter_set_leave", "opentelemetry", present), m("enter_set_leave", i, present)), 10.0, False)
    row("clone-the-map's enter+set+leave ÷ ours, 50 values (≥ 3)",
        lambda i: div(m("enter_set_leave", "clone-map", present), m("enter_set_leave", i, present)), 3.0, False)
    row("enter+set+leave ÷ push+pop floor (≤ 3)",
        lambda i: div(m("enter_set_leave", i, present), m("enter_set_leave", "floor-push-pop", present)), 3.0)
    request = "5-values-3-nested"
    measured = [(m("request_like", i, request), name) for i, name in ALTERNATIVES]
    measured = [(ns, name) for ns, name in measured if ns is not None]
    if measured:
        best = min(measured)
        row(f"best alternative's request-like ({best[1]}) ÷ ours (≥ 2)",
            lambda i: div(best[0], m("request_like", i, request)), 2.0, False)
    row("OpenTelemetry's request-like ÷ ours (≥ 5)",
        lambda i: div(m("request_like", "opentelemetry", request), m("request_like", i, request)), 5.0, False)
    row("request-like ÷ the naive stack's (≤ 0.7)",
        lambda i: div(m("request_like", i, request), m("request_like", "naive-stack", request)), 0.7)
    row("request-like ÷ the hand-rolled task-local map's (≤ 0.5)",
        lambda i: div(m("request_like", i, request), m("request_like", "task-local-map", request)), 0.5)
    return "\n".join(lines)


def div(a, b):
    return None if a is None or b is None or b == 0 else a / b


def layer(target):
    path = target / "layer-bench.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    out = ["| server | requests/s | ÷ plain | p50 (µs) | p99 (µs) |", "|---|---:|---:|---:|---:|"]
    for row in data:
        out.append(f"| {row['server']} | {row['requests_per_second']:.0f} | {row['throughput_ratio']:.3f} "
                   f"| {row['p50_us']:.0f} | {row['p99_us']:.0f} |")
    first = data[0]
    out.append(f"\n{first['connections']} connections, {first['rounds']} rounds of {first['seconds_per_round']} s per server, interleaved.")
    return "\n".join(out)


def others(medians):
    """Every other group measured, with its figures, for the record."""
    main = {"enter_leave", "enter_set_leave", "read_nearest", "set_remove_nearest",
            "request_like", "layer_per_request"}
    rest = sorted(key for key in medians if key[0] not in main)
    if not rest:
        return None
    out = ["| group | implementation | case | median (ns) |", "|---|---|---|---:|"]
    for group, function, value in rest:
        out.append(f"| {group} | {function} | {value or '—'} | {fmt(medians[(group, function, value)])} |")
    return "\n".join(out)


def chart(medians, path):
    """One panel per headline workload, one bar per implementation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("enter + set + leave, 50 values present", "enter_set_leave", "50-present"),
        ("read at depth 100, 50 other keys", "read_nearest", "depth-100/50-others"),
        ("request-like workload", "request_like", "5-values-3-nested"),
    ]
    colors = ["#1f6feb", "#388bfd", "#79c0ff", "#8b949e", "#8b949e", "#8b949e", "#d29922", "#8b949e"]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 9))
    for ax, (title, group, value) in zip(axes, panels):
        bars = [(name, medians.get((group, impl, value)), colors[n])
                for n, (impl, name) in enumerate(IMPLS)]
        bars = [bar for bar in bars if bar[1] is not None][::-1]
        names = [name for name, _, _ in bars]
        figures = [ns for _, ns, _ in bars]
        ax.barh(names, figures, color=[color for _, _, color in bars])
        for y, ns in enumerate(figures):
            ax.annotate(fmt(ns), (ns, y), xytext=(4, 0), textcoords="offset points", va="center")
        ax.set_title(f"{title} (ns, lower is better)", loc="left", fontweight="bold")
        ax.margins(x=0.15)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-dir", default="target", type=pathlib.Path)
    parser.add_argument("--svg", default="docs/benchmarks.svg", type=pathlib.Path)
    parser.add_argument("--baselines", default="new",
                        help="comma-separated criterion baselines to take the median over")
    args = parser.parse_args()
    medians = load(args.target_dir, args.baselines.split(","))
    if not medians:
        sys.exit(f"no criterion results under {args.target_dir}/criterion: run the benches first")
    print(f"![Medians of the headline workloads]({args.svg})\n")
    print("### Medians (ns)\n")
    print(markdown(medians))
    print("\n### Targets\n")
    print(targets(medians))
    layer_table = layer(args.target_dir)
    if layer_table:
        print("\n### Layer overhead on loopback\n")
        print(layer_table)
    rest = others(medians)
    if rest:
        print("\n### Other workloads\n")
        print(rest)
    chart(medians, args.svg)


if __name__ == "__main__":
    main()
