#!/usr/bin/env bash
# On a machine with a CUDA device: build csl_ext with its CUDA kernels, run every
# CUDA test and every benchmark on the device within 8 minutes, and write one
# report (report.json + report.md). Steps and sizes: benchmarks/gpu_suite.py.
#
#   benchmarks/gpu_suite.sh                        # -> benchmarks/results/gpu_suite/report.md
#   benchmarks/gpu_suite.sh --out /tmp/gpu --budget-s 300
#   CSL_GPU_SUITE_CPU=1 benchmarks/gpu_suite.sh    # the same steps at tiny sizes on the CPU (no build)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m benchmarks.gpu_suite "$@"
