"""Atomic training checkpoints: a crash while saving never loses the last one.

A checkpoint is one ``torch.save`` file holding everything `Trainer` needs to
continue exactly: the method's name and kwargs, its state_dict (with MoCo's
queue and BYOL's EMA target, which are buffers / parameters of the Method),
the optimiser, scheduler and probe optimiser states, the torch / numpy /
python RNG states, the position (epoch, global step, step in the epoch) and
the data settings (dataset, data_root, image_size) and the config.
"""
import os
import pickle
import random
import tempfile
import zipfile

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "CheckpointError", "REQUIRED_KEYS"]

# keys a training checkpoint written by Trainer always has
REQUIRED_KEYS = ("method", "method_kwargs", "model", "optimizer", "scheduler", "rng", "epoch", "step",
                 "step_in_epoch", "dataset", "data_root", "image_size", "config")


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read (truncated, corrupt, or
    not a csl_ext checkpoint)."""


def save_checkpoint(path: str, state: dict) -> None:
    """Writes `state` to `path` atomically.

    The bytes go to a temporary file in the same directory (same file system,
    so the rename is atomic), are flushed and fsync'ed, then the file replaces
    `path` with os.replace. A crash at any point leaves either the previous
    checkpoint or the new one, never a torn file; the temporary file is removed
    when saving fails.

    Args:
        path: destination, e.g. ``runs/simclr/checkpoint.pt``.
        state: picklable dict (tensors, state_dicts, numbers, strings).

    Raises:
        Whatever torch.save / the file system raise; `path` is then untouched.
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    # persist the rename itself (the directory entry); not possible on every OS
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str, map_location="cpu", require_keys=REQUIRED_KEYS) -> dict:
    """Reads a checkpoint written by `save_checkpoint`.

    Args:
        path: checkpoint file.
        map_location: passed to torch.load (default: tensors on the CPU).
        require_keys: keys the state must hold (default: a Trainer checkpoint's);
            pass () to read any dict.

    Returns:
        The state dict.

    Raises:
        FileNotFoundError: no file at `path`.
        CheckpointError: the file is truncated / corrupt or lacks a required key.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path!r}")
    try:
        # weights_only=False: the state holds numpy / python RNG states; only
        # load checkpoints you wrote yourself
        state = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(f"checkpoint {path!r} is corrupt or truncated ({type(error).__name__}: {error})") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path!r} does not hold a dict, got {type(state).__name__}")
    missing = [k for k in require_keys if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path!r} is not a csl_ext training checkpoint: missing keys {missing}")
    return state


def rng_state() -> dict:
    """torch (CPU and CUDA), numpy and python RNG states."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    """Restores what `rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
