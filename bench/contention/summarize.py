#!/usr/bin/env python3
"""Prints the tables of a run_contention.sh results file (TSV): median p50 over rounds.

    python3 bench/contention/summarize.py RESULTS.tsv [--max-background CORES]

One table per model: a row per candidate, a column per condition, each cell
the median over rounds of the runs' p50 in ms (with the number of rounds when
it is not the same everywhere), and the ratio to ONNX Runtime with the same
thread count (ort2) in the same condition. Rounds whose background (cores busy
before the competitors started, i.e. not ours) exceeded --max-background
(default 0.25) are listed and left out; --max-background -1 keeps everything.
"""
import argparse
import csv
import statistics
from collections import defaultdict

COND_ORDER = ["quiet", "yes1", "yes2", "yes3", "busy1", "busy2", "busy3", "train", "trainyes1", "trainyes2"]


def order(values, preferred):
    pref = [v for v in preferred if v in values]
    return pref + sorted(v for v in values if v not in pref)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results")
    ap.add_argument("--max-background", type=float, default=0.25)
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.results), delimiter="\t"))
    noisy = set()
    cells = defaultdict(list)
    cands_seen, conds_seen, models_seen = [], [], []
    for r in rows:
        for key, seen in (("candidate", cands_seen), ("condition", conds_seen), ("model", models_seen)):
            if r[key] not in seen:
                seen.append(r[key])
        bg = float(r["background_cores"]) if r["background_cores"] not in ("", "nan") else 0.0
        if a.max_background >= 0 and bg > a.max_background:
            noisy.add((r["round"], r["condition"], r["background_cores"], r["loadavg1"]))
            continue
        try:
            p50 = float(r["p50_ms"])
        except ValueError:
            continue
        if p50 == p50:
            cells[(r["model"], r["candidate"], r["condition"])].append(p50)
    conds = order(conds_seen, COND_ORDER)
    for m in models_seen:
        print(f"\n### {m}: median p50 (ms) over rounds; in brackets: / ort2 in the same condition\n")
        print("| candidate | " + " | ".join(conds) + " |")
        print("| --- |" + " --- |" * len(conds))
        for c in cands_seen:
            out = []
            for cond in conds:
                v = cells.get((m, c, cond))
                ref = cells.get((m, "ort2", cond))
                if not v:
                    out.append("-")
                    continue
                med = statistics.median(v)
                s = f"{med:.2f}"
                if ref and c != "ort2":
                    s += f" ({med / statistics.median(ref):.2f})"
                s += f" n={len(v)}"
                out.append(s)
            print(f"| {c} | " + " | ".join(out) + " |")
    if noisy:
        print(f"\nLeft out (background above {a.max_background} cores before the competitors started):")
        for rnd, cond, bg, la in sorted(noisy):
            print(f"  round {rnd} {cond}: background {bg} cores, loadavg {la}")


if __name__ == "__main__":
    main()
