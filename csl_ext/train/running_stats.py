"""The statistics of the steps since the last log row."""

import math
import time

import torch
import torch.distributed as dist

from csl_ext import distributed

__all__ = ["RunningStats"]


class RunningStats:
    """Sums of the loss and online-probe accuracy since the last `reset`.

    Non-finite losses (skipped steps) count as steps but not in the mean.
    """

    def __init__(self):
        self.loss_sum = self.acc_sum = 0.0
        self.loss_n = self.acc_n = self.steps = 0
        self.started = time.perf_counter()

    def reset(self) -> None:
        self.__init__()

    def add(self, loss: float, probe_acc: float | None) -> None:
        self.steps += 1
        if math.isfinite(loss):
            self.loss_sum += loss
            self.loss_n += 1
        if probe_acc is not None:
            self.acc_sum += probe_acc
            self.acc_n += 1

    def summary(self, global_batch: int, device: torch.device) -> tuple[float, float | None, float]:
        """(mean loss, mean probe accuracy or None, images/s of all processes),
        the means over every process (one all-reduce)."""
        seconds = max(time.perf_counter() - self.started, 1e-9)
        sums = torch.tensor([self.loss_sum, self.loss_n, self.acc_sum, self.acc_n], dtype=torch.float64, device=device)
        if distributed.is_distributed():
            dist.all_reduce(sums)
        loss_sum, loss_n, acc_sum, acc_n = sums.tolist()
        loss = loss_sum / loss_n if loss_n else float("nan")
        return loss, (acc_sum / acc_n if acc_n else None), global_batch * self.steps / seconds
