"""Slow, obviously-correct pure-PyTorch references of the compiled ops.

They materialise every intermediate; the tests compare the fused ops against
them and the ops fall back to them when the extension is not built.
"""
import torch

MASKS = ("none", "diag", "block")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half and bfloat16 are computed (and their LSE returned) in float32."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def info_nce_mask(n: int, m: int, mask: str, block_size: int = 1, row_offset: int = 0, device=None) -> torch.Tensor:
    """Boolean (N, M) mask, True where candidate j is excluded for anchor i."""
    rows = torch.arange(n, device=device).unsqueeze(1) + row_offset
    cols = torch.arange(m, device=device).unsqueeze(0)
    if mask == "diag":
        return cols == rows
    if mask == "block":
        return cols // block_size == rows
    return torch.zeros(n, m, dtype=torch.bool, device=device)


def info_nce_logits_reference(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    *,
    scale: float = 1.0,
    softcap: float = 0.0,
    mask: str = "none",
    block_size: int = 1,
    row_offset: int = 0,
) -> torch.Tensor:
    """The full (N, M) logit matrix of info_nce_lse, masked entries -inf."""
    dtype = compute_dtype(anchors.dtype)
    scores = scale * (anchors.to(dtype) @ candidates.to(dtype).T)  # N x M
    if softcap > 0:
        scores = softcap * torch.tanh(scores / softcap)
    excluded = info_nce_mask(anchors.shape[0], candidates.shape[0], mask, block_size, row_offset, anchors.device)
    return scores.masked_fill(excluded, float("-inf"))


def info_nce_lse_reference(anchors: torch.Tensor, candidates: torch.Tensor, **kwargs) -> torch.Tensor:
    """Row log-sum-exp of `info_nce_logits_reference`: (N,)."""
    return torch.logsumexp(info_nce_logits_reference(anchors, candidates, **kwargs), dim=1)
