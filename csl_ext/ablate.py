"""``csl-ablate``: Falcon & Cho's ablations as one command, a grid of
(method or composition) x (encoder or representation-extraction strategy).

Each cell pretrains (csl_ext.train) and then evaluates the frozen encoder with
the paper's MLP protocol (csl_ext.eval; kNN / linear when asked). Cells run
one after another, each in its own folder ``OUTPUT/cells/<method>__<row>``; a
rerun skips finished cells (their ``cell.json``) and resumes an interrupted
one from its checkpoint. Writes ``results.csv``, ``results.md`` (rows =
encoders or strategies, columns = methods, best per row in bold, as the
paper's tables) and ``heatmap.png``.

Examples:
    csl-ablate --table 1 --preset small --output-dir runs/table1
    csl-ablate --table 2 --preset small --output-dir runs/table2
    csl-ablate --methods simclr,byol --encoders resnet18,resnet50 --epochs 5
    csl-ablate --table 2 --composition 'dot_yadim={"augmentation": "yadim", "encoder": "amdim",
        "similarity": "scaled_dot", "loss": "amdim_nce"}'
    torchrun --nproc_per_node=2 -m csl_ext.ablate --table 1 ...     # every cell under DDP

- [0]: Falcon & Cho 2020, Tables 1 and 2, https://arxiv.org/abs/2009.00104
"""

import argparse
import csv
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field

__all__ = ["PRESETS", "TABLES", "Cell", "build_parser", "main", "plan_grid"]

# The paper's grids: Table 1 varies the encoder, Table 2 the extraction strategy.
TABLES = {
    1: {
        "methods": ("amdim", "cpc_v2", "yadim"),
        "kind": "encoder",
        "rows": (
            "resnet18",
            "resnet34",
            "resnet50",
            "resnet101",
            "resnet152",
            "resnext50_32x4d",
            "resnext101_32x8d",
            "wide_resnet50_2",
            "wide_resnet101_2",
        ),
    },
    2: {"methods": ("amdim", "yadim"), "kind": "extraction", "rows": ("last", "amdim", "last_random", "same_level")},
}
ROW_LABELS = {
    "last": "(-1:-1)",
    "amdim": "(-1:-2)+(-1:-3)+(-2:-2)",
    "last_random": "(-1:k~U)",
    "same_level": "(-1:-1)+(-2:-2)+(-3:-3)",
}


@dataclass(frozen=True)
class Preset:
    """Sizes of a grid's runs.

    Attributes:
        width: encoder width multiplier (every registry entry takes it).
        amdim_depth: blocks per stage of AMDIM's encoder (None: its preset's).
        cpc_blocks: CPC v2's patch ResNet stages (None: the method's default).
        epochs, batch_size, subset: of each cell's pretraining.
        method_kwargs: per method, extra keyword arguments (e.g. a higher lr
            for short runs).
        probe_epochs: epochs of the evaluation's MLP / linear probe (None: 50).
    """

    width: float
    amdim_depth: int | None
    cpc_blocks: tuple | None
    epochs: int
    batch_size: int
    subset: int | None = None
    method_kwargs: dict = field(default_factory=dict)
    probe_epochs: int | None = None


_SHORT_RUN = {"lr": 1e-3, "warmup_steps": 0}  # Adam's 2e-4 moves too little in a few hundred steps
PRESETS = {
    # the published widths; epochs are --epochs (the paper's schedule is not reproduced by default)
    "full": Preset(width=1.0, amdim_depth=None, cpc_blocks=None, epochs=100, batch_size=256),
    # both tables on the embedded digits on a 2-core CPU in about an hour
    "small": Preset(
        width=0.0625,
        amdim_depth=1,
        cpc_blocks=(1, 1, 1),
        epochs=2,
        batch_size=64,
        method_kwargs={
            "amdim": _SHORT_RUN,
            "yadim": _SHORT_RUN,
            "cpc_v2": dict(_SHORT_RUN, context_blocks=1),
            "simclr": {"hidden_dim": 256, "proj_dim": 64, "warmup_epochs": 0},
            "moco_v2": {"hidden_dim": 256, "proj_dim": 64, "queue_size": 1024},
            "byol": {"hidden_dim": 256, "proj_dim": 64, "warmup_epochs": 0},
        },
        probe_epochs=20,
    ),
    # seconds: for tests
    "tiny": Preset(
        width=0.03125,
        amdim_depth=1,
        cpc_blocks=(1, 1),
        epochs=1,
        batch_size=16,
        subset=32,
        method_kwargs={
            "cpc_v2": {"offsets": (2, 3), "context_blocks": 1},
            "simclr": {"hidden_dim": 32, "proj_dim": 16},
            "moco_v2": {"hidden_dim": 32, "proj_dim": 16, "queue_size": 32},
            "byol": {"hidden_dim": 32, "proj_dim": 16},
        },
        probe_epochs=2,
    ),
}
# Table 2's YADIM with another extraction strategy is YADIM's parts with that extraction.
YADIM_PARTS = {"augmentation": "yadim", "encoder": "amdim", "similarity": "scaled_dot", "loss": "amdim_nce"}
MAP_METHODS = ("amdim", "yadim")  # methods whose extraction is a comparison spec


@dataclass
class Cell:
    """One run of the grid: column `column` (a method or composition label),
    row `row` (an encoder or a comparison spec), trained as METHODS[method]
    with method_kwargs."""

    column: str
    row: str
    kind: str
    method: str
    method_kwargs: dict
    folder: str


class UsageError(ValueError):
    """A user error: printed as ``csl-ablate: error: ...`` with exit status 2."""


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError("an empty list; give comma-separated names")
    return items


def _encoder_kwargs(encoder: str, preset: Preset) -> dict:
    kwargs: dict = {"width": preset.width}
    if encoder == "amdim" and preset.amdim_depth is not None:
        kwargs["depth"] = preset.amdim_depth
    if encoder == "cpc_resnet" and preset.cpc_blocks is not None:
        kwargs["blocks"] = list(preset.cpc_blocks)
    return kwargs


def _default_encoder(column: str, compositions: dict) -> str:
    if column in compositions:
        return compositions[column].get("encoder", "resnet18")
    return {"amdim": "amdim", "yadim": "amdim", "cpc_v2": "cpc_resnet"}.get(column, "resnet18")


def _cell_kwargs(
    column: str, kind: str, row: str | None, encoder: str | None, preset: Preset, compositions: dict
) -> tuple[str, dict]:
    """(METHODS name, method_kwargs) of one cell."""
    if column in compositions:
        method, kwargs = "composed", dict(compositions[column])
        loss = kwargs.get("loss", "nt_xent")
    else:
        method, kwargs, loss = column, dict(preset.method_kwargs.get(column, {})), None
    encoder = encoder or (row if kind == "encoder" else None) or _default_encoder(column, compositions)
    if kind == "extraction":
        if method == "amdim":
            kwargs["comparisons"] = row
        elif method == "yadim":  # YADIM fixes (-1:-1): its parts with this extraction instead
            short_run = dict(preset.method_kwargs.get("yadim", {}))
            if "warmup_steps" in short_run:  # compose counts its warm-up in epochs
                short_run["warmup_epochs"] = short_run.pop("warmup_steps")
            method, kwargs = "composed", {**YADIM_PARTS, **short_run}
            kwargs["extraction"] = row
        elif method == "composed" and loss == "amdim_nce":
            kwargs["extraction"] = row
        else:
            raise UsageError(
                f"--comparisons apply to amdim, yadim and compositions with loss amdim_nce, not to {column!r}"
            )
    if method == "cpc_v2" and encoder == "amdim":
        raise UsageError("cpc_v2 cannot use encoder 'amdim' (it encodes CPC's small patches)")
    kwargs["encoder"] = encoder
    kwargs["encoder_kwargs"] = {**_encoder_kwargs(encoder, preset), **kwargs.get("encoder_kwargs", {})}
    return method, kwargs


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def plan_grid(args, preset: Preset) -> tuple[str, list[str], list[str], list[Cell]]:
    """(row kind, columns, rows, cells) from the parsed arguments.

    Raises:
        UsageError: unknown names, or options that do not fit together.
    """
    from csl_ext.encoders import ENCODERS
    from csl_ext.methods import METHODS
    from csl_ext.tasks import parse_comparisons

    compositions = {}
    for text in args.composition or []:
        label, sep, spec = text.partition("=")
        if not sep or not label.strip():
            raise UsageError(f"--composition must be LABEL=JSON, got {text!r}")
        try:
            parts = json.loads(spec)
        except json.JSONDecodeError as error:
            raise UsageError(f"--composition {label}: not JSON ({error})") from None
        if not isinstance(parts, dict):
            raise UsageError(f"--composition {label}: JSON must be an object of compose() arguments")
        compositions[label.strip()] = parts

    table = TABLES.get(args.table) if args.table is not None else None
    methods = _split(args.methods) or (list(table["methods"]) if table else [])
    methods += [label for label in compositions if label not in methods]
    if not methods:
        raise UsageError("no methods: give --table 1 / 2, --methods or --composition")
    for m in methods:
        if m not in METHODS and m not in compositions:
            raise UsageError(f"--methods: unknown method {m!r}; known: {', '.join(sorted(METHODS))}")
    encoders = _split(args.encoders)
    comparisons = _split(args.comparisons)
    for e in encoders or []:
        if e not in ENCODERS:
            raise UsageError(f"--encoders: unknown encoder {e!r}; known: {', '.join(sorted(ENCODERS))}")
    for c in comparisons or []:
        try:
            parse_comparisons(c, 3)
        except ValueError as error:
            raise UsageError(f"--comparisons: {error}") from None

    kind = table["kind"] if table else ("extraction" if comparisons else "encoder")
    fixed_encoder = None
    if kind == "encoder":
        if comparisons:
            raise UsageError("--comparisons do not fit --table 1 (its rows are encoders); use --table 2")
        rows = encoders or (list(table["rows"]) if table else ["default"])
    else:
        rows = comparisons or list(table["rows"])
        if encoders:
            if len(encoders) != 1:
                raise UsageError(
                    "with extraction strategies as rows, --encoders names the one encoder of every "
                    f"cell, got {len(encoders)}"
                )
            fixed_encoder = encoders[0]

    cells = []
    for row in rows:
        for column in methods:
            enc_row = None if row == "default" else row
            method, kwargs = _cell_kwargs(column, kind, enc_row, fixed_encoder, preset, compositions)
            folder = os.path.join(args.output_dir, "cells", f"{_slug(column)}__{_slug(row)}")
            cells.append(Cell(column, row, kind, method, kwargs, folder))
    return kind, methods, rows, cells


# -- running -------------------------------------------------------------------------
def _run_cell(cell: Cell, args, preset: Preset, protocols: list[str]) -> dict | None:
    """Pretrains (or resumes) and evaluates one cell; returns its record on rank 0."""
    from csl_ext import distributed
    from csl_ext.data.digits import AUGMENT_OVERRIDES as DIGITS_AUGMENT
    from csl_ext.train import TrainConfig, train

    epochs = args.epochs or preset.epochs
    config = TrainConfig(
        method=cell.method,
        method_kwargs=cell.method_kwargs,
        dataset=args.dataset,
        data_root=args.data_root,
        subset=args.subset or preset.subset,
        epochs=epochs,
        batch_size=args.batch_size or preset.batch_size,
        num_workers=args.num_workers,
        seed=args.seed,
        output_dir=cell.folder,
        resume=True,
        backend=args.backend,
        progress=False,
        tensorboard=False,
        online_probe=False,
        augment_kwargs=dict(DIGITS_AUGMENT) if args.dataset == "digits" else {},
    )
    start = time.perf_counter()
    result = train(config)
    train_seconds = time.perf_counter() - start
    if result.status != "completed":
        raise KeyboardInterrupt(f"cell {cell.column} x {cell.row} stopped ({result.status}); rerun to resume")
    if distributed.rank() != 0:
        return None
    start = time.perf_counter()
    scores = _evaluate(result, protocols, preset)
    record = {
        "column": cell.column,
        "row": cell.row,
        "kind": cell.kind,
        "method": cell.method,
        "method_kwargs": cell.method_kwargs,
        "scores": scores,
        "steps": result.step,
        "epochs": epochs,
        "train_seconds": round(train_seconds, 2),
        "eval_seconds": round(time.perf_counter() - start, 2),
    }
    path = os.path.join(cell.folder, "cell.json")
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1)
    os.replace(path + ".tmp", path)  # a cell is finished only once its record is whole
    return record


def _evaluate(result, protocols: list[str], preset: Preset) -> dict:
    from csl_ext.data import DEFAULT_SIZE, load_eval_splits
    from csl_ext.eval import default_val_split, evaluate_encoder

    cfg = result.config
    size = cfg.image_size or DEFAULT_SIZE[cfg.dataset]
    train_set, test_set = load_eval_splits(cfg.dataset, cfg.data_root, size)
    method = result.method.eval()
    probe_kwargs = {"epochs": preset.probe_epochs} if preset.probe_epochs else None
    return evaluate_encoder(
        method,
        train_set,
        test_set,
        protocols=tuple(protocols),
        probe_kwargs=probe_kwargs,
        seed=cfg.seed,
        val_split=default_val_split(cfg.dataset),
    )


def _load_record(cell: Cell) -> dict | None:
    path = os.path.join(cell.folder, "cell.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        record = json.load(f)
    if record.get("method_kwargs") != json.loads(json.dumps(cell.method_kwargs)):
        raise UsageError(
            f"{path} was run with other settings ({record.get('method_kwargs')}); "
            "use another --output-dir or delete the cell's folder"
        )
    return record


# -- reporting -----------------------------------------------------------------------
def write_reports(
    output_dir: str, kind: str, columns: list[str], rows: list[str], records: list[dict], protocol: str
) -> dict[str, str]:
    """results.csv, results.md and heatmap.png; returns their paths."""
    os.makedirs(output_dir, exist_ok=True)
    paths = {
        "csv": os.path.join(output_dir, "results.csv"),
        "md": os.path.join(output_dir, "results.md"),
        "png": os.path.join(output_dir, "heatmap.png"),
    }
    protocols = sorted({p for r in records for p in r["scores"]})
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "row_kind",
                "row",
                "column",
                "method",
                *protocols,
                "steps",
                "epochs",
                "train_seconds",
                "eval_seconds",
                "method_kwargs",
            ]
        )
        for r in records:
            writer.writerow(
                [
                    r["kind"],
                    r["row"],
                    r["column"],
                    r["method"],
                    *[r["scores"].get(p, "") for p in protocols],
                    r["steps"],
                    r["epochs"],
                    r["train_seconds"],
                    r["eval_seconds"],
                    json.dumps(r["method_kwargs"]),
                ]
            )
    table = {(r["row"], r["column"]): r["scores"].get(protocol) for r in records}
    with open(paths["md"], "w") as f:
        f.write(markdown_table(kind, columns, rows, table, protocol))
    _heatmap(paths["png"], kind, columns, rows, table, protocol)
    return paths


def _row_label(kind: str, row: str) -> str:
    return ROW_LABELS.get(row, row) if kind == "extraction" else row


def markdown_table(kind: str, columns: list[str], rows: list[str], table: dict, protocol: str) -> str:
    """Rows = encoders or strategies, columns = methods; test accuracy (%) of
    `protocol`, the best of each row in bold; '—' for a cell not run yet."""
    head = "encoder" if kind == "encoder" else "representation extraction"
    lines = [
        f"{protocol} test accuracy (%)",
        "",
        f"| {head} | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in rows:
        values = [table.get((row, c)) for c in columns]
        best = max((v for v in values if v is not None), default=None)
        cells = ["—" if v is None else (f"**{100 * v:.1f}**" if v == best else f"{100 * v:.1f}") for v in values]
        lines.append(f"| {_row_label(kind, row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _heatmap(path: str, kind: str, columns: list[str], rows: list[str], table: dict, protocol: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = (
        np.array(
            [[table.get((r, c)) if table.get((r, c)) is not None else np.nan for c in columns] for r in rows],
            dtype=float,
        )
        * 100
    )
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(columns), 0.9 + 0.45 * len(rows)))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(rows)), [_row_label(kind, r) for r in rows])
    for i in range(len(rows)):
        for j in range(len(columns)):
            if not math.isnan(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(image, ax=ax, label=f"{protocol} test accuracy (%)")
    ax.set_title(f"csl-ablate: {kind} x method")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- the command ---------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="csl-ablate", description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--table",
        type=int,
        choices=sorted(TABLES),
        default=None,
        help="the paper's grid: 1 = methods x encoders, 2 = methods x extraction strategies",
    )
    p.add_argument("--methods", default=None, help="comma-separated METHODS names (replaces the table's)")
    p.add_argument(
        "--encoders",
        default=None,
        help="comma-separated ENCODERS names (rows, or the one encoder of an extraction grid)",
    )
    p.add_argument("--comparisons", default=None, help="comma-separated comparison specs or presets (rows)")
    p.add_argument(
        "--composition",
        action="append",
        default=None,
        metavar="LABEL=JSON",
        help="a column built by csl_ext.methods.compose from these parts (repeatable)",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="full", help="sizes of the runs")
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    p.add_argument("--batch-size", type=int, default=None, help="global; default: the preset's")
    p.add_argument("--subset", type=int, default=None, help="pretrain on the first N images")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--backend", default="torchvision", choices=("auto", "dali", "torchvision"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--eval-protocols", default="mlp", help="comma-separated: mlp,linear,knn (the table shows the first)"
    )
    p.add_argument("--output-dir", default="runs/ablate")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None) -> int:
    """Runs csl-ablate; returns the exit status (user errors exit with 2 via argparse)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except UsageError as error:
        parser.error(str(error))
    except ValueError as error:  # a setting a method / the trainer rejected
        parser.error(str(error))
    except KeyboardInterrupt as error:
        print(
            f"\ncsl-ablate: interrupted{': ' + str(error) if str(error) else ''}; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130


def _main(args) -> int:
    import torch.distributed as dist

    from csl_ext.train.distributed_setup import init_distributed

    # Under torchrun: one process group for every cell (the trainer joins it
    # and leaves it up), so ranks never race to rebuild it between cells.
    created_group = init_distributed()
    try:
        return _run_grid(args)
    finally:
        if created_group:
            dist.destroy_process_group()


def _run_grid(args) -> int:
    import torch.distributed as dist

    from csl_ext import distributed
    from csl_ext.eval.evaluate import check_protocols

    preset = PRESETS[args.preset]
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    protocols = list(check_protocols(tuple(p.strip() for p in args.eval_protocols.split(",") if p.strip())))
    kind, columns, rows, cells = plan_grid(args, preset)
    is_main = distributed.rank() == 0
    records, pending = {}, []
    for cell in cells:
        record = _load_record(cell)
        if record is None:
            pending.append(cell)
        else:
            records[(cell.row, cell.column)] = record
    if is_main:
        print(
            f"csl-ablate: {len(cells)} cells ({len(rows)} {kind}s x {len(columns)} methods), "
            f"{len(cells) - len(pending)} finished, {len(pending)} to run; output {args.output_dir}"
        )
    bar = None
    if is_main and not args.no_progress and pending:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pending), desc="cells", unit="cell", dynamic_ncols=True)
    start = time.perf_counter()
    try:
        for cell in pending:
            if bar is not None:
                bar.set_postfix_str(f"{cell.column} x {_row_label(kind, cell.row)}")
            try:
                record = _run_cell(cell, args, preset, protocols)
            except ValueError as error:
                raise UsageError(f"cell {cell.column} x {cell.row}: {error}") from None
            if record is not None:
                records[(cell.row, cell.column)] = record
                scores = ", ".join(f"{k} {100 * v:.1f}%" for k, v in record["scores"].items())
                line = (
                    f"{cell.column} x {_row_label(kind, cell.row)}: {scores} "
                    f"(train {record['train_seconds']:.0f} s, eval {record['eval_seconds']:.0f} s)"
                )
                (bar.write if bar is not None else print)(line)
                write_reports(args.output_dir, kind, columns, rows, _ordered(records, cells), protocols[0])
            if distributed.is_distributed():
                dist.barrier()  # the other ranks wait for rank 0's evaluation
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if not is_main:
        return 0
    paths = write_reports(args.output_dir, kind, columns, rows, _ordered(records, cells), protocols[0])
    print(f"csl-ablate: done in {time.perf_counter() - start:.0f} s; {paths['md']}, {paths['csv']}, {paths['png']}")
    with open(paths["md"]) as f:
        print(f.read())
    return 0


def _ordered(records: dict, cells: list[Cell]) -> list[dict]:
    return [records[(c.row, c.column)] for c in cells if (c.row, c.column) in records]


if __name__ == "__main__":
    sys.exit(main())
