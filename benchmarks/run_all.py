"""Regenerates every benchmark table and plot with one command.

    python -m benchmarks.run_all --out benchmarks/results            # CPU, the sizes of docs/benchmarks.md
    python -m benchmarks.run_all --out /tmp/r --quick                # seconds: tiny sizes, no pytest suites

Runs, in this process and in order: patchify_ratios (patchify.md), scaling
(scaling.md and the two PNG plots), train_step (train_step.md); then, unless
--quick or --no-suites, each pytest-benchmark suite benchmarks/test_bench_*.py
in a subprocess, printed as ratio tables by benchmarks/report.py into
suites.md. Writes README.md into --out: every table, with the command that
made it. On a GPU machine use benchmarks/gpu_suite.sh instead.
"""

import argparse
import glob
import os
import subprocess
import sys
import time

import torch

from benchmarks import patchify_ratios, scaling, train_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = {
    "patchify_ratios": ["--batch", "2", "--size", "32", "--patch", "8", "--stride", "4", "--rounds", "2"],
    "scaling": ["--nt-xent-sizes", "32", "64", "--amdim-sizes", "4", "8", "--rounds", "1"],
    "train_step": ["--methods", "simclr", "--batch", "4", "--steps", "1", "--warmup", "0", "--workers", "0"],
}
SCRIPTS = {"patchify_ratios": patchify_ratios, "scaling": scaling, "train_step": train_step}
TABLES = {"patchify_ratios": "patchify.md", "scaling": "scaling.md", "train_step": "train_step.md"}


def run_suites(out: str) -> str:
    """Every pytest-benchmark suite, each as report.py's Markdown ratio tables."""
    sections = []
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for suite in sorted(glob.glob(os.path.join(ROOT, "benchmarks", "test_bench_*.py"))):
        name = os.path.splitext(os.path.basename(suite))[0]
        json_path = os.path.join(out, f"{name}.json")
        command = [
            sys.executable,
            "-m",
            "pytest",
            suite,
            "-q",
            "-p",
            "no:cacheprovider",
            f"--benchmark-json={json_path}",
        ]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(json_path):
            sections.append(
                f"### {name}\n\nfailed (rc {done.returncode}):\n\n```\n{(done.stdout + done.stderr)[-2000:]}\n```\n"
            )
            continue
        report = subprocess.run(
            [sys.executable, os.path.join(ROOT, "benchmarks", "report.py"), json_path],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        sections.append(
            f"### {name}\n\n`python -m pytest benchmarks/{name}.py --benchmark-json={name}.json && "
            f"python benchmarks/report.py {name}.json`\n{report.stdout}"
        )
    text = "\n".join(sections)
    with open(os.path.join(out, "suites.md"), "w") as f:
        f.write(text)
    return text


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and no pytest suites (a smoke run)")
    parser.add_argument("--no-suites", action="store_true", help="skip the pytest-benchmark suites")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    start = time.monotonic()
    sections = [
        f"# Benchmark results\n\nMade by `python -m benchmarks.run_all --out {args.out}"
        f"{' --quick' if args.quick else ''}` with torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; what each table measures: docs/benchmarks.md.\n"
    ]
    for name, script in SCRIPTS.items():
        script_args = (QUICK[name] if args.quick else []) + ["--out", args.out]
        script.main(script_args)
        with open(os.path.join(args.out, TABLES[name])) as f:
            sections.append(f"## {name}\n\n`python -m benchmarks.{name} {' '.join(script_args)}`\n\n{f.read()}")
    if not (args.quick or args.no_suites):
        sections.append("## pytest-benchmark suites\n\n" + run_suites(args.out))
    sections.append(f"Total: {time.monotonic() - start:.0f} s.\n")
    text = "\n".join(sections)
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(text)
    return text


if __name__ == "__main__":
    main()
