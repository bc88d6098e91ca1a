"""Prints a pytest-benchmark JSON file as Markdown tables of ratios.

    python benchmarks/report.py bench.json [--baseline csl_ext]

One table per benchmark group: each variant's median time, its time
relative to the baseline variant (the first parametrised variant unless
--baseline is given), and its peak extra memory when the benchmark
recorded one (extra_info["peak_extra_MiB"]).
"""

import argparse
import json
import re
from collections import defaultdict


def _variant(bench: dict) -> str:
    params = bench.get("params") or {}
    if "variant" in params:
        return str(params["variant"])
    match = re.search(r"\[(.*)\]", bench["name"])
    return match.group(1) if match else bench["name"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file")
    parser.add_argument("--baseline", default=None, help="variant that the ratios divide by")
    args = parser.parse_args()
    with open(args.json_file) as f:
        data = json.load(f)
    groups = defaultdict(list)
    for bench in data["benchmarks"]:
        groups[bench["group"]].append(bench)
    for group, benches in groups.items():
        baseline_name = args.baseline or _variant(benches[0])
        base = next((b for b in benches if _variant(b) == baseline_name), benches[0])
        base_time = base["stats"]["median"]
        base_mem = base.get("extra_info", {}).get("peak_extra_MiB")
        print(f"\n**{group}** (ratios: variant / {_variant(base)})\n")
        print("| variant | median time (s) | time ratio | peak extra memory (MiB) | memory ratio |")
        print("|---|---|---|---|---|")
        for bench in benches:
            median = bench["stats"]["median"]
            mem = bench.get("extra_info", {}).get("peak_extra_MiB")
            mem_text = f"{mem:.1f}" if mem is not None else "-"
            mem_ratio = f"{mem / base_mem:.2f}" if mem is not None and base_mem else "-"
            print(f"| {_variant(bench)} | {median:.4f} | {median / base_time:.2f} | {mem_text} | {mem_ratio} |")


if __name__ == "__main__":
    main()
