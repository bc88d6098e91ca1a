"""Atomic training checkpoints: a crash while saving never loses the last one.

A checkpoint is one ``torch.save`` file holding everything `Trainer` needs to
continue exactly: the method's name and kwargs, its state_dict (with MoCo's
queue and BYOL's EMA target, which are buffers / parameters of the Method),
the optimiser, scheduler and probe optimiser states, the torch / numpy /
python RNG states, the position (epoch, global step, step in the epoch) and
the data settings (dataset, data_root, image_size) and the config.

Loading is safe: ``torch.load(weights_only=True)`` rebuilds only tensors and
plain data (dicts, lists, tuples, strings, numbers), so a file carrying a
pickled callable is refused before anything in it runs. The RNG states are
stored as plain data for that reason (numpy's key as a tensor); numpy arrays,
which checkpoints written before held, are the one extra type allowed.
"""

import os
import pickle
import random
import re
import tempfile
import zipfile

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "CheckpointError", "REQUIRED_KEYS"]

# keys a training checkpoint written by Trainer always has
REQUIRED_KEYS = (
    "method",
    "method_kwargs",
    "model",
    "optimizer",
    "scheduler",
    "rng",
    "epoch",
    "step",
    "step_in_epoch",
    "dataset",
    "data_root",
    "image_size",
    "config",
)


# numpy arrays hold the numpy RNG state of checkpoints written before the RNG
# states became plain data; these types rebuild numeric arrays and nothing else
_NUMPY_ARRAY_GLOBALS = [np.ndarray, np.dtype, type(np.dtype(np.uint32))]  # MT19937 keys are uint32
try:
    from numpy._core.multiarray import _reconstruct  # numpy >= 2
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct
_NUMPY_ARRAY_GLOBALS.append(_reconstruct)


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be used: truncated, corrupt, not a
    csl_ext checkpoint, or carrying pickled code (refused unread)."""


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
        CheckpointError: the file is truncated / corrupt, lacks a required key,
            or carries pickled code (refused before any of it runs).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path!r}")
    try:
        # weights_only=True: tensors and plain data only; any other pickled
        # global (a function, a class) stops the load before it is called
        with torch.serialization.safe_globals(_NUMPY_ARRAY_GLOBALS):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL (\S+)", str(error))  # weights_only's "Unsupported global: GLOBAL x.y"
        if found:
            raise CheckpointError(
                f"checkpoint {path!r} refused: it carries pickled code ({found.group(1)}), which a csl_ext checkpoint "
                "never holds; nothing in it was run. If you wrote the file yourself and trust it, read it with "
                "torch.load(path, weights_only=False)"
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(error))  # not torch's long advice
        detail = detail.group(1) if detail else str(error).splitlines()[0]
        raise CheckpointError(
            f"checkpoint {path!r} is corrupt or truncated, or not a torch.save file ({detail})"
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError) as error:
        raise CheckpointError(
            f"checkpoint {path!r} is corrupt or truncated, or not a torch.save file ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {path!r} is not a csl_ext checkpoint: expected a dict, got {type(state).__name__}"
        )
    missing = [k for k in require_keys if k not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {path!r} is not a csl_ext checkpoint: missing keys {missing} (expected {list(require_keys)})"
        )
    return state


def rng_state() -> dict:
    """torch (CPU and CUDA), numpy and python RNG states, as tensors and plain
    data (what a weights_only load reads back)."""
    numpy_state = np.random.get_state(legacy=False)  # {"bit_generator", "state": {"key", "pos"}, ...}
    numpy_state["state"]["key"] = torch.from_numpy(numpy_state["state"]["key"].astype(np.int64))
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": numpy_state,
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    """Restores what `rng_state` returned (also the numpy-array form of
    checkpoints written before)."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict) and isinstance(numpy_state["state"]["key"], torch.Tensor):
        key = numpy_state["state"]["key"].numpy().astype(np.uint32)
        numpy_state = {**numpy_state, "state": {**numpy_state["state"], "key": key}}
    np.random.set_state(numpy_state)
    random.setstate(state["python"])
