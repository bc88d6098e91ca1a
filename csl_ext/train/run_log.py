"""The run's logs: a CSV file, TensorBoard events, a loss-curve PNG and the
progress display.

Only rank 0 writes. On resume the CSV keeps the rows up to the resumed step
and drops later ones (written after the checkpoint, then lost), so the curve
has no duplicated steps.

TensorBoard, matplotlib and tqdm are optional (``pip install csl_ext[train]``):
without them training logs the CSV only, skips the PNG and prints plain
progress lines, and says so once per process.
"""

import csv
import os
import sys

__all__ = ["RunLog", "plot_loss", "progress_bar", "PlainProgress", "CSV_FIELDS"]

CSV_FIELDS = ("step", "epoch", "loss", "lr", "images_per_s", "probe_acc", "knn_acc")


class RunLog:
    """Appends rows to ``<output_dir>/log.csv`` and TensorBoard events to
    ``<output_dir>/tensorboard``.

    Args:
        output_dir: the run directory.
        resume_step: the global step training continues from (0: fresh run,
            the CSV is started anew).
        tensorboard: also write TensorBoard events.
        enabled: False on ranks other than 0 (all calls do nothing).
    """

    def __init__(self, output_dir: str, resume_step: int = 0, tensorboard: bool = True, enabled: bool = True):
        self.enabled = enabled
        self.csv_path = os.path.join(output_dir, "log.csv")
        self.writer = None
        if not enabled:
            return
        os.makedirs(output_dir, exist_ok=True)
        kept = []
        if resume_step > 0 and os.path.exists(self.csv_path):
            with open(self.csv_path, newline="") as f:
                kept = [row for row in csv.DictReader(f) if int(row["step"]) <= resume_step]
        self._file = open(self.csv_path, "w", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=CSV_FIELDS)
        self._csv.writeheader()
        self._csv.writerows(kept)
        self._file.flush()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                _say_once(
                    "tensorboard", "tensorboard is not installed: logging to log.csv only (pip install tensorboard)"
                )
                return
            # purge_step drops events after the resumed step on resume
            self.writer = SummaryWriter(
                os.path.join(output_dir, "tensorboard"), purge_step=resume_step if resume_step > 0 else None
            )

    def write(
        self,
        step: int,
        epoch: int,
        loss: float,
        lr: float,
        images_per_s: float,
        probe_acc: float | None,
        knn_acc: float | None = None,
    ):
        if not self.enabled:
            return
        self._csv.writerow(
            {
                "step": step,
                "epoch": epoch,
                "loss": f"{loss:.6g}",
                "lr": f"{lr:.6g}",
                "images_per_s": f"{images_per_s:.1f}",
                "probe_acc": "" if probe_acc is None else f"{probe_acc:.4f}",
                "knn_acc": "" if knn_acc is None else f"{knn_acc:.4f}",
            }
        )
        self._file.flush()
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", lr, step)
            self.writer.add_scalar("train/images_per_s", images_per_s, step)
            if probe_acc is not None:
                self.writer.add_scalar("train/probe_acc", probe_acc, step)
            if knn_acc is not None:
                self.writer.add_scalar("train/knn_acc", knn_acc, step)

    def close(self):
        if not self.enabled or self._file.closed:
            return
        self._file.close()
        if self.writer is not None:
            self.writer.close()


def plot_loss(csv_path: str, png_path: str) -> str | None:
    """Draws loss against step from the CSV log into `png_path` (matplotlib,
    Agg backend: no display needed). Returns the path, or None without rows
    or without matplotlib (said once)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    try:
        import matplotlib
    except ImportError:
        _say_once(
            "matplotlib",
            f"matplotlib is not installed: no {os.path.basename(png_path)} "
            "(pip install matplotlib); the losses are in log.csv",
        )
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([int(r["step"]) for r in rows], [float(r["loss"]) for r in rows])
    ax.set_xlabel("step")
    ax.set_ylabel("self-supervised loss")
    ax.set_title(os.path.basename(os.path.dirname(os.path.abspath(csv_path))))
    ax.grid(alpha=0.3)
    knn = [(int(r["step"]), float(r["knn_acc"])) for r in rows if r.get("knn_acc")]
    if knn:  # the online kNN monitor on a second axis
        right = ax.twinx()
        right.plot(*zip(*knn), "o-", color="tab:orange", label="kNN accuracy")
        right.set_ylabel("online kNN accuracy")
        right.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


def progress_bar(total: int, initial: int = 0, desc: str = ""):
    """A tqdm bar, or `PlainProgress` lines without tqdm (said once). Both
    have update(n), set_postfix(**values) and close()."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        _say_once("tqdm", "tqdm is not installed: plain progress lines (pip install tqdm)")
        return PlainProgress(total, initial, desc)
    return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)


class PlainProgress:
    """Progress without tqdm: one line per `set_postfix` (the trainer calls it
    at each log step), printed at the next `update`, e.g.
    ``simclr: step 10/400 loss=4.1532 lr=0.03 img_s=512``."""

    def __init__(self, total: int, initial: int = 0, desc: str = ""):
        self.total, self.n, self.desc = total, initial, desc
        self._postfix: dict | None = None

    def set_postfix(self, **values) -> None:
        self._postfix = values

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._postfix is not None:
            values = " ".join(f"{k}={v}" for k, v in self._postfix.items())
            print(f"{self.desc}: step {self.n}/{self.total} {values}", flush=True)
            self._postfix = None

    def close(self) -> None:
        pass


_SAID: set[str] = set()


def _say_once(topic: str, message: str) -> None:
    """Prints `message` to stderr the first time `topic` comes up in this process."""
    if topic not in _SAID:
        _SAID.add(topic)
        print(f"csl_ext: {message}", file=sys.stderr, flush=True)
