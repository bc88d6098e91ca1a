"""patchify and its adjoint against their floor, a clone of the output's size,
on 1 and 2 threads, as ratios measured in one process (interleaved rounds).

    python benchmarks/patchify_ratios.py --out benchmarks/results      # 64 x 3 x 256 x 256, p 64, s 32
    python benchmarks/patchify_ratios.py --batch 4 --rounds 3 --out /tmp/r  # a smoke run

Rows (float32 and uint8; the adjoint is float32 only, it sums):
- patchify / clone: csl_ext.ops.patchify against ``patches.clone()`` on the same
  number of threads (allocation and first touch of the output included in both).
- adjoint / clone: patchify's backward (the op ``unpatchify`` and autograd call).
- unfold / clone: ``images.unfold(2).unfold(3).permute(...).contiguous()``.
- patchify 2 threads / 1 thread (and the adjoint's): below 1 means 2 threads help.

Targets (issue 14.2): patchify <= 1.2x clone, adjoint <= 1.5x clone, 2 / 1 threads <= 1.
Writes patchify.json and patchify.md into --out.
"""

import argparse
import json
import os

import torch

from benchmarks.timing import interleaved_times, median_ms, median_ratio
from csl_ext.ops import patchify

TARGETS = {"patchify": 1.2, "adjoint": 1.5, "unfold": None}


def measure(batch: int, size: int, patch: int, stride: int, rounds: int, device: torch.device) -> list[dict]:
    """One row per (dtype, variant): ms and ratio to clone on 1 and 2 threads
    (one column on CUDA), and the variant's 2-thread / 1-thread ratio."""
    rows = []
    thread_counts = (1, 2) if device.type == "cpu" else (1,)
    for dtype in (torch.float32, torch.uint8):
        images = (torch.rand(batch, 3, size, size, device=device) * 255).to(dtype)
        patches = patchify(images, patch, stride)
        calls = {
            "clone": patches.clone,
            "patchify": lambda: patchify(images, patch, stride),
            "unfold": lambda: (
                images.unfold(2, patch, stride).unfold(3, patch, stride).permute(0, 2, 3, 1, 4, 5).contiguous()
            ),
        }
        if dtype.is_floating_point:
            calls["adjoint"] = lambda: torch.ops.csl_ext.patchify_backward(patches, size, size, patch, stride)
        variants, threads = {}, {}
        for n in thread_counts:
            for name, call in calls.items():
                variants[f"{name}@{n}"], threads[f"{name}@{n}"] = call, n
        times = interleaved_times(variants, rounds=rounds, threads=threads, device=device)
        for name in calls:
            if name == "clone":
                continue
            row = {"dtype": str(dtype).split(".")[-1], "variant": name, "target": TARGETS[name]}
            if 2 in thread_counts:
                row["threads_2_over_1"] = median_ratio(times, f"{name}@2", f"{name}@1")
            for n in thread_counts:
                row[f"ms_{n}"] = median_ms(times, f"{name}@{n}")
                row[f"clone_ms_{n}"] = median_ms(times, f"clone@{n}")
                row[f"ratio_{n}"] = median_ratio(times, f"{name}@{n}", f"clone@{n}")
            rows.append(row)
    return rows


def to_markdown(rows: list[dict], shape: str) -> str:
    lines = [
        f"patchify of {shape} (ratios: median over interleaved rounds, same process)",
        "",
        "| dtype | variant | 1 thread: ms (clone ms) | / clone | 2 threads: ms (clone ms) | / clone "
        "| 2 / 1 threads | target / clone |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = f"<= {r['target']}" if r["target"] else "-"
        two = (
            f"{r['ms_2']:.1f} ({r['clone_ms_2']:.1f}) | {r['ratio_2']:.2f} | {r['threads_2_over_1']:.2f}"
            if "ms_2" in r
            else "- | - | -"
        )
        lines.append(
            f"| {r['dtype']} | {r['variant']} | {r['ms_1']:.1f} ({r['clone_ms_1']:.1f}) | {r['ratio_1']:.2f} "
            f"| {two} | {target} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (one 'thread' column)")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    shape = f"{args.batch} x 3 x {args.size} x {args.size}, patch {args.patch}, stride {args.stride}, {device.type}"
    rows = measure(args.batch, args.size, args.patch, args.stride, args.rounds, device)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "patchify.json"), "w") as f:
        json.dump({"shape": shape, "rows": rows}, f, indent=1)
    table = to_markdown(rows, shape)
    with open(os.path.join(args.out, "patchify.md"), "w") as f:
        f.write(table)
    print(table)
    return rows


if __name__ == "__main__":
    main()
