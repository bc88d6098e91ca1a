"""The run's logs: a CSV file, TensorBoard events and a loss-curve PNG.

Only rank 0 writes. On resume the CSV keeps the rows up to the resumed step
and drops later ones (written after the checkpoint, then lost), so the curve
has no duplicated steps.
"""
import csv
import os

__all__ = ["RunLog", "plot_loss", "CSV_FIELDS"]

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
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events after the resumed step on resume
            self.writer = SummaryWriter(os.path.join(output_dir, "tensorboard"),
                                        purge_step=resume_step if resume_step > 0 else None)

    def write(self, step: int, epoch: int, loss: float, lr: float, images_per_s: float, probe_acc: float | None,
              knn_acc: float | None = None):
        if not self.enabled:
            return
        self._csv.writerow({"step": step, "epoch": epoch, "loss": f"{loss:.6g}", "lr": f"{lr:.6g}",
                            "images_per_s": f"{images_per_s:.1f}",
                            "probe_acc": "" if probe_acc is None else f"{probe_acc:.4f}",
                            "knn_acc": "" if knn_acc is None else f"{knn_acc:.4f}"})
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
    Agg backend: no display needed). Returns the path, or None without rows."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    import matplotlib

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
