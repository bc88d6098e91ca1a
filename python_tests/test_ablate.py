"""csl-ablate end to end on the embedded digits: a 2x2 grid with the tiny
preset writes the Markdown table, the CSV and the heat map; a rerun trains
nothing; a cell whose evaluation was lost resumes from its checkpoint
without training; user errors exit with status 2 and a one-line message."""

import csv
import os
import socket
import subprocess
import sys

import pytest

from csl_ext.ablate import main, markdown_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GRID = ["--methods", "amdim,yadim", "--comparisons", "last,amdim", "--preset", "tiny", "--no-progress"]


def _mtimes(root):
    return {
        os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
        for d, _, files in os.walk(root)
        for f in files
        if f == "checkpoint.pt"
    }


def test_two_by_two_grid_writes_reports_and_a_rerun_trains_nothing(tmp_path, capsys):
    out = tmp_path / "grid"
    assert main([*GRID, "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 cells (2 extractions x 2 methods), 0 finished, 4 to run" in printed
    table = (out / "results.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert lines[0] == "| representation extraction | amdim | yadim |"
    assert lines[2].startswith("| (-1:-1) |") and lines[3].startswith("| (-1:-2)+(-1:-3)+(-2:-2) |")
    assert all(line.count("**") == 2 for line in lines[2:])  # one best value per row, in bold
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {(r["row"], r["column"]) for r in rows} == {(a, b) for a in ("last", "amdim") for b in ("amdim", "yadim")}
    assert all(0.0 <= float(r["mlp"]) <= 1.0 and int(r["steps"]) == 2 for r in rows)
    # YADIM with AMDIM's extraction is YADIM's parts composed with that extraction
    yadim_amdim = next(r for r in rows if r["column"] == "yadim" and r["row"] == "amdim")
    assert yadim_amdim["method"] == "composed" and '"extraction": "amdim"' in yadim_amdim["method_kwargs"]
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    checkpoints = _mtimes(out)
    assert len(checkpoints) == 4

    assert main([*GRID, "--output-dir", str(out)]) == 0  # rerun: every cell finished
    assert "4 finished, 0 to run" in capsys.readouterr().out
    assert _mtimes(out) == checkpoints

    # a cell trained but not evaluated (its record lost): resumed from its checkpoint, evaluated, not retrained
    os.remove(out / "cells" / "yadim__last" / "cell.json")
    assert main([*GRID, "--output-dir", str(out)]) == 0
    assert "3 finished, 1 to run" in capsys.readouterr().out
    assert _mtimes(out) == checkpoints
    assert (out / "cells" / "yadim__last" / "cell.json").exists()


def test_markdown_table_bolds_the_best_of_each_row():
    text = markdown_table(
        "encoder", ["a", "b"], ["r1", "r2"], {("r1", "a"): 0.5, ("r1", "b"): 0.75, ("r2", "a"): 0.9}, "mlp"
    )
    assert "| r1 | 50.0 | **75.0** |" in text and "| r2 | **90.0** | — |" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--methods", "simsiam", "--encoders", "resnet18"], "unknown method 'simsiam'"),
        (["--table", "1", "--encoders", "resnet7"], "unknown encoder 'resnet7'"),
        (["--table", "1", "--comparisons", "last"], "--comparisons do not fit --table 1"),
        (["--methods", "simclr", "--comparisons", "last"], "--comparisons apply to amdim, yadim"),
        (["--table", "2", "--comparisons", "(-1:-7)"], "refers to map -7"),
        (["--methods", "cpc_v2", "--encoders", "amdim"], "cpc_v2 cannot use encoder 'amdim'"),
        (["--table", "2", "--composition", "x={not json"], "--composition x: not JSON"),
    ],
)
def test_user_errors_exit_2(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*args, "--output-dir", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "csl-ablate: error: " in err and message in err
    assert not (tmp_path / "cells").exists()  # nothing ran


def test_console_entry_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "csl_ext.ablate", "--methods", "simsiam", "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2
    assert "csl-ablate: error: --methods: unknown method 'simsiam'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_grid_under_torchrun_two_processes(tmp_path):
    """Two gloo processes, two cells: (-1:-1) and a random target map leave
    some embedding heads without a gradient (DDP must be told), and the
    second cell must reuse the process group rather than race to rebuild it
    while rank 0 evaluates the first."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as free:  # a free port for the rendezvous
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={port}",
            "-m",
            "csl_ext.ablate",
            "--methods",
            "yadim",
            "--comparisons",
            "last,last_random",
            "--preset",
            "tiny",
            "--no-progress",
            "--output-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["row"] for r in rows} == {"last", "last_random"}
    assert proc.stdout.count("csl-ablate: done") == 1  # reports from rank 0 only
