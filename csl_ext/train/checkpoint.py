"""Atomic checkpoints and the RNG state they carry."""
import os
import random

import numpy as np
import torch


def rng_state() -> dict:
    """Every random generator's state (python, numpy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj, path: str) -> None:
    """torch.save to a temporary file in the same directory, fsync, then
    os.replace: a crash or SIGKILL mid-write never leaves a torn checkpoint."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str, map_location="cpu") -> dict:
    """Loads a checkpoint written by the trainer.

    Raises:
        FileNotFoundError: path does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    # weights_only=False: the checkpoint holds RNG states and the config (our own files)
    return torch.load(path, map_location=map_location, weights_only=False)
