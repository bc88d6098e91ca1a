"""Training logs: CSV rows, TensorBoard scalars and a PNG of the loss curve."""
import csv
import os

FIELDS = ("step", "epoch", "loss", "probe_loss", "probe_acc", "lr", "images_per_s")


class RunLogger:
    """Appends rows to <out>/log.csv and scalars to TensorBoard (<out>/tb)
    when tensorboard is installed. Only rank 0 should create one."""

    def __init__(self, out_dir: str, tensorboard: bool = True):
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, "log.csv")
        new = not os.path.exists(self.path)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=FIELDS)
        if new:
            self.writer.writeheader()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(os.path.join(out_dir, "tb"))
            except ImportError:  # optional dependency
                self.tb = None

    def log(self, row: dict) -> None:
        self.writer.writerow({k: row.get(k, "") for k in FIELDS})
        if self.tb is not None:
            for key in ("loss", "probe_loss", "probe_acc", "lr", "images_per_s"):
                if row.get(key) not in (None, ""):
                    self.tb.add_scalar(f"train/{key}", row[key], row["step"])

    def flush(self) -> None:
        self.file.flush()
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def plot_loss(csv_path: str, png_path: str, title: str = "") -> bool:
    """Writes the loss curve of a log.csv to png_path; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    steps, losses = [], []
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            if row["loss"]:
                steps.append(int(row["step"]))
                losses.append(float(row["loss"]))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, losses, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)
    return True
