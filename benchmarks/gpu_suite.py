"""The GPU suite's steps and report; benchmarks/gpu_suite.sh is its entry point.

On a machine with a CUDA device, in order and within one time budget (8 min):
1. build csl_ext._C with its CUDA kernels (FORCE_CUDA=1) and check they are registered;
2. run every CUDA test (``pytest -m cuda``), with a JUnit XML of the results;
3. run every benchmark on the device: patchify_ratios, scaling, train_step.
Each step is a subprocess with the time left as its timeout; a failed step is
recorded and the suite goes on. Writes report.json and report.md (the step table
followed by each benchmark's tables) into --out.

With --cpu (or CSL_GPU_SUITE_CPU=1) the same steps run on the CPU at tiny sizes
and without the build (the extension in place is used), so that a test checks the
suite and its report here.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORTED = ("patchify", "scaling", "train_step")  # the files <name>.json / .md the benchmarks write
STEPS = ("build", "cuda_tests", "patchify_ratios", "scaling", "train_step")

# Benchmark arguments: on the GPU, the sizes of docs/benchmarks.md; on the CPU, seconds-long smoke sizes.
BENCHMARKS = {
    "gpu": {
        "patchify_ratios": ["--rounds", "11"],
        "scaling": [
            "--nt-xent-sizes",
            "1024",
            "2048",
            "4096",
            "8192",
            "16384",
            "32768",
            "--amdim-sizes",
            "64",
            "128",
            "256",
            "512",
            "1024",
            "--max-materialised-mib",
            "16384",
        ],
        "train_step": ["--batch", "256", "--steps", "5", "--warmup", "2", "--workers", "8"],
    },
    "cpu": {
        "patchify_ratios": ["--batch", "2", "--size", "32", "--patch", "8", "--stride", "4", "--rounds", "2"],
        "scaling": ["--nt-xent-sizes", "32", "64", "--amdim-sizes", "4", "8", "--rounds", "1"],
        "train_step": ["--methods", "simclr", "--batch", "4", "--steps", "1", "--warmup", "0", "--workers", "0"],
    },
}


def run_step(name: str, command: list[str], deadline: float, env: dict | None = None) -> dict:
    """Runs `command` in the repository root with the time left before `deadline`."""
    left = deadline - time.monotonic()
    record = {"step": name, "command": " ".join(command), "rc": None, "seconds": 0.0, "output_tail": ""}
    if left <= 1:
        record["rc"], record["output_tail"] = "skipped", "time budget spent"
        return record
    start = time.monotonic()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=left)
        record["rc"], output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        record["rc"] = "timeout"
        output = (expired.stdout or b"").decode(errors="replace") + (expired.stderr or b"").decode(errors="replace")
    record["seconds"] = round(time.monotonic() - start, 1)
    record["output_tail"] = output[-3000:]
    print(f"[gpu_suite] {name}: rc={record['rc']} in {record['seconds']} s", flush=True)
    return record


def junit_counts(path: str) -> dict:
    """passed / failed / errors / skipped counts of a pytest JUnit XML file."""
    if not os.path.exists(path):
        return {}
    suite = ElementTree.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, failed, errors, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    return {
        "tests": total,
        "passed": total - failed - errors - skipped,
        "failed": failed,
        "errors": errors,
        "skipped": skipped,
    }


def environment(device: str) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": device,
        "cpu_count": os.cpu_count(),
    }
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def to_markdown(report: dict, out: str) -> str:
    lines = [
        "# GPU suite report",
        "",
        f"Environment: `{json.dumps(report['environment'])}`",
        "",
        f"Total: {report['seconds']} s of a {report['budget_s']} s budget. CUDA tests: "
        f"`{json.dumps(report['cuda_tests'])}`",
        "",
        "| step | rc | seconds | command |",
        "|---|---|---|---|",
    ]
    for step in report["steps"]:
        lines.append(f"| {step['step']} | {step['rc']} | {step['seconds']} | `{step['command']}` |")
    for name in REPORTED:
        path = os.path.join(out, f"{name}.md")
        if os.path.exists(path):
            with open(path) as f:
                lines += ["", f"## {name}", "", f.read()]
    failed = [s for s in report["steps"] if s["rc"] != 0]
    for step in failed:
        lines += ["", f"## {step['step']} (rc {step['rc']}): output tail", "", "```", step["output_tail"], "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/gpu_suite")
    parser.add_argument(
        "--cpu",
        action="store_true",
        default=os.environ.get("CSL_GPU_SUITE_CPU") == "1",
        help="tiny sizes on the CPU, no build (also CSL_GPU_SUITE_CPU=1)",
    )
    parser.add_argument("--budget-s", type=float, default=480.0, help="time for all steps together")
    parser.add_argument("--tests", default="python_tests", help="where pytest looks for CUDA tests")
    parser.add_argument("--only", nargs="+", choices=STEPS, default=list(STEPS), help="run these steps only")
    args = parser.parse_args(argv)
    device = "cpu" if args.cpu else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: run on a GPU machine, or pass --cpu (CSL_GPU_SUITE_CPU=1) for the CPU smoke run")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    for stale in (
        "report.json",
        "report.md",
        "cuda_tests.xml",
        *(f"{n}.{e}" for n in REPORTED for e in ("json", "md")),
    ):
        if os.path.exists(os.path.join(out, stale)):  # a failed step must not report an earlier run's numbers
            os.remove(os.path.join(out, stale))
    start = time.monotonic()
    deadline = start + args.budget_s
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    steps = []
    if device == "cuda" and "build" in args.only:
        build_env = {
            **env,
            "FORCE_CUDA": "1",
            "CUDA_HOME": os.environ.get("CUDA_HOME", "/usr/local/cuda"),
            "MAX_JOBS": str(os.cpu_count() or 4),
        }
        steps.append(run_step("build", [sys.executable, "setup.py", "build_ext", "--inplace"], deadline, build_env))
        check = "import csl_ext, sys; sys.exit(0 if csl_ext.has_cuda_kernels() else 1)"
        steps.append(run_step("cuda_kernels_registered", [sys.executable, "-c", check], deadline, env))
    junit = os.path.join(out, "cuda_tests.xml")
    if "cuda_tests" in args.only:
        steps.append(
            run_step(
                "cuda_tests",
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-m",
                    "cuda",
                    args.tests,
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    f"--junitxml={junit}",
                ],
                deadline,
                env,
            )
        )
    for bench, bench_args in BENCHMARKS["cpu" if args.cpu else "gpu"].items():
        if bench not in args.only:
            continue
        command = [sys.executable, "-m", f"benchmarks.{bench}", "--device", device, "--out", out, *bench_args]
        steps.append(run_step(bench, command, deadline, env))
    report = {
        "environment": environment(device),
        "budget_s": args.budget_s,
        "seconds": round(time.monotonic() - start, 1),
        "cuda_tests": junit_counts(junit),
        "steps": steps,
    }
    for name in REPORTED:
        path = os.path.join(out, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                report[name] = json.load(f)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(to_markdown(report, out))
    print(f"[gpu_suite] report: {os.path.join(out, 'report.md')}")
    return report


if __name__ == "__main__":
    main()
