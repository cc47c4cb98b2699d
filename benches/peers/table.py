"""Reads the JSON lines of scripts/bench-peers.sh (strata's `bench postgres` lines and the
peers' lines, from one or more runs) and prints one Markdown table: the median of the
runs for each implementation and workload, and strata's ratios to the others.

Usage: python3 benches/peers/table.py RESULTS.jsonl
"""

import json
import statistics
import sys


def load(path):
    figures = {}  # (workload, implementation) -> [values]
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if not line.startswith("{"):
                continue
            result = json.loads(line)
            scenario = result.get("scenario", "")
            if "impl" in result:
                # A peer: bank_commands_N, commands per second.
                clients = result["clients"]
                add(figures, f"commands_{clients}", result["impl"], result["commands_per_s"])
            elif scenario.startswith("pg_bank_commands_"):
                clients = result["clients"]
                add(figures, f"commands_{clients}", "strata", result["commands_per_s"])
                add(figures, f"commands_{clients}", "raw", result["ceiling_events_per_s"])
            elif scenario == "pg_append_bulk":
                add(figures, "bulk", "strata", result["events_per_s"])
                add(figures, "bulk", "raw", result["ceiling_events_per_s"])
    return figures


def add(figures, workload, implementation, value):
    figures.setdefault((workload, implementation), []).append(float(value))


def median(figures, workload, implementation):
    values = figures.get((workload, implementation))
    return statistics.median(values) if values else None


def number(value):
    return "—" if value is None else f"{value:,.0f}"


def ratio(figures, workload, a, b):
    """The median over the runs of a ÷ b, each run against itself."""
    mine = figures.get((workload, a))
    theirs = figures.get((workload, b))
    if not mine or not theirs or len(mine) != len(theirs):
        return "—"
    ratios = [x / y for x, y in zip(mine, theirs) if y]
    return f"{statistics.median(ratios):.2f}×" if ratios else "—"


def main():
    figures = load(sys.argv[1])
    runs = max((len(v) for v in figures.values()), default=0)
    workloads = sorted(
        {w for w, _ in figures if w.startswith("commands_")},
        key=lambda w: int(w.split("_")[1]),
    )
    print(
        f"median of {runs} run(s); commands/s for commands (one event each), events/s for "
        "bulk; a ratio is the median of the runs' ratios, each run against itself\n"
    )
    print(
        "| workload | strata | raw INSERT (ceiling) | cqrs-es | eventsourcing "
        "| strata ÷ ceiling | strata ÷ cqrs-es | strata ÷ eventsourcing |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for workload in workloads + (["bulk"] if ("bulk", "strata") in figures else []):
        strata = median(figures, workload, "strata")
        raw = median(figures, workload, "raw")
        cqrs = median(figures, workload, "cqrs-es")
        python = median(figures, workload, "eventsourcing")
        name = (
            f"commands, {workload.split('_')[1]} clients"
            if workload != "bulk"
            else "bulk append (1000 events per append)"
        )
        print(
            f"| {name} | {number(strata)} | {number(raw)} | {number(cqrs)} | {number(python)} "
            f"| {ratio(figures, workload, 'strata', 'raw')} "
            f"| {ratio(figures, workload, 'strata', 'cqrs-es')} "
            f"| {ratio(figures, workload, 'strata', 'eventsourcing')} |"
        )


if __name__ == "__main__":
    main()
