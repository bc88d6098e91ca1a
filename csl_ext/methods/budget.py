"""Settings that depend on the length of a run, shared by SimCLR, MoCo v2 and BYOL.

The papers' schedules assume hundreds of epochs: SimCLR and BYOL warm up for
10 epochs, MoCo's key encoder averages the last ~1/(1 - m) steps (1000 at
m = 0.999). In a run of a few hundred steps those settings mean the learning
rate is still rising, or the key encoder (and so the queue's keys) is still
mostly its random initialisation, when training ends. The rules here shorten
them in proportion to the run and leave paper-length runs unchanged. BYOL's
target keeps its paper's memory (csl_ext.methods.byol says why).
"""

from csl_ext.optim import OPTIMIZERS, make_optimizer

# warm-up and momentum memory are each at most this fraction of the run
SHORT_RUN_FRACTION = 0.1


def check_optimizer(name: str) -> str:
    """Returns `name` if it is one of csl_ext.optim.OPTIMIZERS, else raises ValueError."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    return name


def warmup_steps(
    warmup_epochs: float, steps_per_epoch: int, total_steps: int, max_fraction: float | None = SHORT_RUN_FRACTION
) -> int:
    """Linear warm-up steps: ``warmup_epochs`` epochs, but at most
    ``max_fraction`` of the run (None: no cap).

    E.g. SimCLR's 10 epochs at 5 steps per epoch over 75 steps: 50 steps
    uncapped (2/3 of the run below the peak rate), 7 steps capped; over 1000
    epochs the cap (100 epochs) does not bind.
    """
    steps = round(warmup_epochs * steps_per_epoch)
    if max_fraction is not None:
        steps = min(steps, int(max_fraction * total_steps))
    return max(0, min(steps, total_steps))


def ema_momentum(momentum: float, total_steps: int, max_fraction: float | None = SHORT_RUN_FRACTION) -> float:
    """An EMA coefficient whose memory 1 / (1 - m) is at most ``max_fraction``
    of the run: ``min(m, 1 - 1 / (max_fraction * total_steps))`` (None: m).

    E.g. MoCo's m = 0.999 over 75 steps becomes 0.867 (memory 7.5 steps) and is
    unchanged over 10^4 steps or more.
    """
    if max_fraction is None:
        return momentum
    horizon = max_fraction * max(1, total_steps)
    return momentum if horizon <= 1 else min(momentum, 1.0 - 1.0 / horizon)


def method_optimizer(
    name: str,
    params,
    *,
    base_lr: float,
    batch_size: int,
    weight_decay: float,
    total_steps: int,
    warmup: int,
    momentum: float = 0.9,
):
    """(optimizer, per-step scheduler) through csl_ext.optim.make_optimizer
    with ``lr = base_lr x batch_size / 256`` and a cosine to 0 after `warmup`."""
    return make_optimizer(
        check_optimizer(name),
        params,
        lr=base_lr * batch_size / 256,
        weight_decay=weight_decay,
        total_steps=total_steps,
        warmup_steps=warmup,
        momentum=momentum,
    )
