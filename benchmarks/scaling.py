"""Time and peak memory of the contrastive losses against batch size, forward +
backward on CPU, as tables and PNG plots.

    python -m benchmarks.scaling --out benchmarks/results                  # the default sizes
    python -m benchmarks.scaling --out /tmp/s --nt-xent-sizes 64 128 --amdim-sizes 8 16 --rounds 1   # smoke

NT-Xent (D = 128, temperature 0.5), 2N views:
- csl_ext: csl_ext.losses.nt_xent (the fused op, no 2N x 2N tensor).
- lightly: lightly 1.6.0's NTXentLoss (materialises the logits).
- materialised: the same formula in plain PyTorch with the 2N x 2N logits.
- three_gemms: S = A.B^T, S.B, S^T.A of the logits' shape: the work any
  implementation does, a floor (it allocates S, so its memory is not one).
AMDIM NCE (D = 256, 7 x 7 maps), batch B:
- csl_ext: csl_ext.losses.amdim_nce; materialised: csl_ext.losses.amdim_nce_reference
  (the (B, B, 49) scores at once); three_gemms: the floor of the (B, B*49) scores.

The materialised variants stop where their logits would pass --max-materialised-mib
(default 256 MiB: 2N <= 8192 for NT-Xent, B <= 1024 for AMDIM; the machine is shared);
beyond, the row is blank. Writes scaling.json, scaling.md, nt_xent_scaling.png and
amdim_nce_scaling.png into --out.
"""

import argparse
import json
import os
import warnings

import torch
import torch.nn.functional as F

from benchmarks.memory import peak_allocated_bytes
from benchmarks.timing import interleaved_times, median_ms
from csl_ext.losses import amdim_nce, nt_xent
from csl_ext.losses.amdim_nce import amdim_nce_reference

NT_XENT_D, TEMPERATURE = 128, 0.5
AMDIM_D, AMDIM_GRID = 256, 7
NT_XENT_SIZES = [1024, 2048, 4096, 8192, 16384, 32768]
AMDIM_SIZES = [64, 128, 256, 512, 1024]


def materialised_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent with the (2N, 2N) logits in memory: z1, z2: (N, D)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / temperature).fill_diagonal_(float("-inf"))  # 2N x 2N
    n = z1.shape[0]
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def _lightly_nt_xent():
    try:
        from lightly.loss import NTXentLoss
    except ImportError:
        return None
    return NTXentLoss(temperature=TEMPERATURE)


def three_gemms(rows: int, cols: int, d: int, device: torch.device):
    """The forward + backward GEMMs of a (rows, cols) score matrix."""
    a, b = torch.randn(rows, d, device=device), torch.randn(cols, d, device=device)

    def run():
        s = a @ b.T  # rows x cols
        s @ b
        s.T @ a

    return run


def loss_call(loss_fn, inputs: list[torch.Tensor]):
    """A forward + backward of `loss_fn(*inputs)`; `setup` drops the gradients."""

    def setup():
        for t in inputs:
            t.grad = None

    def run():
        out = loss_fn(*inputs)
        out = sum(out) if isinstance(out, tuple) else out
        out.backward()

    return run, setup


def nt_xent_variants(two_n: int, max_mib: float, device: torch.device) -> dict:
    n = two_n // 2
    z1 = torch.randn(n, NT_XENT_D, device=device, requires_grad=True)
    z2 = torch.randn(n, NT_XENT_D, device=device, requires_grad=True)
    variants = {"csl_ext": loss_call(lambda a, b: nt_xent(a, b, TEMPERATURE), [z1, z2])}
    if two_n * two_n * 4 / 2**20 <= max_mib:
        lightly = _lightly_nt_xent()
        if lightly is not None:
            variants["lightly"] = loss_call(lightly, [z1, z2])
        variants["materialised"] = loss_call(lambda a, b: materialised_nt_xent(a, b, TEMPERATURE), [z1, z2])
        variants["three_gemms"] = (three_gemms(two_n, two_n, NT_XENT_D, device), None)
    return variants


def amdim_variants(batch: int, max_mib: float, device: torch.device) -> dict:
    anchor = torch.randn(batch, AMDIM_D, device=device, requires_grad=True)
    positives = torch.randn(batch, AMDIM_D, AMDIM_GRID, AMDIM_GRID, device=device, requires_grad=True)
    variants = {"csl_ext": loss_call(amdim_nce, [anchor, positives])}
    cols = batch * AMDIM_GRID * AMDIM_GRID
    if batch * cols * 4 / 2**20 <= max_mib:
        variants["materialised"] = loss_call(amdim_nce_reference, [anchor, positives])
        variants["three_gemms"] = (three_gemms(batch, cols, AMDIM_D, device), None)
    return variants


def measure(make_variants, sizes: list[int], rounds: int, max_mib: float, device: torch.device) -> list[dict]:
    """One row per (size, variant): median ms over interleaved rounds and peak MiB."""
    rows = []
    for size in sizes:
        variants = make_variants(size, max_mib, device)
        times = interleaved_times({name: run for name, (run, _) in variants.items()}, rounds=rounds, device=device)
        for name, (run, setup) in variants.items():
            peak = peak_allocated_bytes(run, setup, device) / 2**20
            rows.append({"size": size, "variant": name, "ms": median_ms(times, name), "peak_MiB": peak})
    return rows


def to_markdown(title: str, size_name: str, rows: list[dict]) -> str:
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    cell = {(r["size"], r["variant"]): r for r in rows}
    head = " | ".join(f"{v} ms (MiB)" for v in variants)
    lines = [
        f"**{title}**: median ms of forward + backward (peak extra MiB); csl_ext / three_gemms",
        "",
        f"| {size_name} | {head} | csl_ext / floor |",
        "|---" * (len(variants) + 2) + "|",
    ]
    for size in sizes:
        cells = []
        for v in variants:
            r = cell.get((size, v))
            cells.append(f"{r['ms']:.1f} ({r['peak_MiB']:.1f})" if r else "-")
        floor = cell.get((size, "three_gemms"))
        ratio = f"{cell[(size, 'csl_ext')]['ms'] / floor['ms']:.2f}" if floor else "-"
        lines.append(f"| {size} | {' | '.join(cells)} | {ratio} |")
    return "\n".join(lines) + "\n"


def plot(title: str, size_name: str, rows: list[dict], path: str, where: str) -> bool:
    """Two log-log panels (time, peak memory) against size; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn("matplotlib is not installed: no PNG written", RuntimeWarning, stacklevel=2)
        return False
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(10, 4))
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        sizes = [r["size"] for r in mine]
        ax_time.plot(sizes, [r["ms"] for r in mine], marker="o", label=variant)
        ax_mem.plot(sizes, [max(r["peak_MiB"], 1e-3) for r in mine], marker="o", label=variant)
    for ax, label in ((ax_time, "forward + backward (ms)"), (ax_mem, "peak extra memory (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(size_name)
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_time.legend()
    fig.suptitle(f"{title} on {where}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nt-xent-sizes", type=int, nargs="+", default=NT_XENT_SIZES, help="2N values")
    parser.add_argument("--amdim-sizes", type=int, nargs="+", default=AMDIM_SIZES, help="batch sizes B")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-materialised-mib", type=float, default=256.0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if any(s < 2 or s % 2 for s in args.nt_xent_sizes):
        parser.error(f"--nt-xent-sizes must be even numbers >= 2, got {args.nt_xent_sizes}")
    if any(s < 2 for s in args.amdim_sizes):
        parser.error(f"--amdim-sizes must be >= 2, got {args.amdim_sizes}")
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    result = {
        "device": where,
        "nt_xent": measure(nt_xent_variants, args.nt_xent_sizes, args.rounds, args.max_materialised_mib, device),
        "amdim_nce": measure(amdim_variants, args.amdim_sizes, args.rounds, args.max_materialised_mib, device),
    }
    with open(os.path.join(args.out, "scaling.json"), "w") as f:
        json.dump(result, f, indent=1)
    tables = (
        to_markdown(f"NT-Xent, D = {NT_XENT_D}, {where}", "2N", result["nt_xent"])
        + "\n"
        + to_markdown(f"AMDIM NCE, D = {AMDIM_D}, {AMDIM_GRID}x{AMDIM_GRID} maps, {where}", "B", result["amdim_nce"])
    )
    with open(os.path.join(args.out, "scaling.md"), "w") as f:
        f.write(tables)
    plot("NT-Xent", "2N", result["nt_xent"], os.path.join(args.out, "nt_xent_scaling.png"), where)
    plot("AMDIM NCE", "B", result["amdim_nce"], os.path.join(args.out, "amdim_nce_scaling.png"), where)
    print(tables)
    return result


if __name__ == "__main__":
    main()
