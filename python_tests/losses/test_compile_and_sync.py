"""The losses inside compiled and captured training steps: torch.compile with
no graph break (CPU), no host-device synchronisation and CUDA-graph capture
(CUDA, skipped without a device), and the one switch of the value checks."""

import pytest
import torch
from torch import nn

import csl_ext
from csl_ext.losses import amdim_nce, cpc_infonce, info_nce, nt_xent
from csl_ext.ops import _checks

pytestmark = pytest.mark.skipif(not csl_ext.has_extension(), reason="csl_ext._C not built")

cuda_only = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def _simclr_parts():
    """A small SimCLR: encoder, projection head, NT-Xent."""
    encoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    head = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))
    return encoder, head


def _simclr_loss(encoder, head, x1, x2):
    z = head(encoder(torch.cat([x1, x2])))
    n = x1.shape[0]
    return nt_xent(z[:n], z[n:], 0.5)


def test_torch_compile_of_a_simclr_step_has_no_graph_break():
    """fullgraph=True fails on any graph break: the encoder, the head, the
    loss's checks and the fused op (its fake and autograd registrations) all
    trace into one forward graph, whose backward AOTAutograd traces too; the
    loss and the gradients equal eager mode."""
    torch.manual_seed(0)
    encoder, head = _simclr_parts()
    params = (*encoder.parameters(), *head.parameters())
    x1, x2 = torch.randn(6, 3, 8, 8), torch.randn(6, 3, 8, 8)
    want = _simclr_loss(encoder, head, x1, x2)
    want.backward()
    want_grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    compiled = torch.compile(_simclr_loss, backend="aot_eager", fullgraph=True)
    got = compiled(encoder, head, x1, x2)
    got.backward()
    torch.testing.assert_close(got, want)
    for p, g in zip(params, want_grads):
        torch.testing.assert_close(p.grad, g)


def test_value_checks_switch():
    """Value checks read tensors on the host: always on CPU, elsewhere only
    in debug mode (a meta tensor stands for a GPU one here)."""
    meta = torch.empty(3, device="meta")
    try:
        _checks.set_debug_checks(False)
        assert _checks.value_checks_enabled(torch.ones(1))
        assert not _checks.value_checks_enabled(meta)
        _checks.check_finite("x", meta)  # skipped: nothing read
        _checks.set_debug_checks(True)
        assert _checks.value_checks_enabled(meta)
    finally:
        _checks.set_debug_checks(False)
    with pytest.raises(ValueError, match="x contains NaN"):
        _checks.check_finite("x", torch.tensor([1.0, float("nan")]))


def _every_loss_forward_backward(device):
    torch.manual_seed(0)
    z1 = torch.randn(8, 16, device=device, requires_grad=True)
    z2 = torch.randn(8, 16, device=device, requires_grad=True)
    anchor = torch.randn(4, 16, device=device, requires_grad=True)
    maps = torch.randn(4, 16, 5, 5, device=device, requires_grad=True)
    preds = [torch.randn(4, 16, 5 - k, 5, device=device, requires_grad=True) for k in (1, 2)]
    loss, reg = amdim_nce(anchor, maps)
    total = nt_xent(z1, z2) + info_nce(z1, z2) + loss + reg + cpc_infonce(preds, maps, (1, 2))
    total.backward()
    return total.detach()


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
def test_losses_never_synchronise(device):
    """torch.cuda.set_sync_debug_mode("error") raises on any host-device
    synchronisation: none in any loss's forward or backward."""
    _every_loss_forward_backward(device)  # warm-up: workspaces, cuBLAS handles
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _every_loss_forward_backward(device)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=cuda_only)])
def test_nt_xent_forward_backward_in_a_cuda_graph(device):
    """nt_xent forward + backward captured once and replayed on new inputs
    gives eager mode's loss and gradients."""
    torch.manual_seed(0)
    z1 = torch.randn(64, 32, device=device, requires_grad=True)
    z2 = torch.randn(64, 32, device=device, requires_grad=True)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up on a side stream, as capture needs
        for _ in range(2):
            z1.grad = z2.grad = None
            nt_xent(z1, z2, 0.5).backward()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    z1.grad = z2.grad = None
    with torch.cuda.graph(graph):
        static_loss = nt_xent(z1, z2, 0.5)
        static_loss.backward()
    new1, new2 = torch.randn_like(z1), torch.randn_like(z2)
    with torch.no_grad():
        z1.copy_(new1)
        z2.copy_(new2)
    graph.replay()
    a, b = new1.clone().requires_grad_(), new2.clone().requires_grad_()
    want = nt_xent(a, b, 0.5)
    want.backward()
    torch.testing.assert_close(static_loss, want.detach())
    torch.testing.assert_close(z1.grad, a.grad)
    torch.testing.assert_close(z2.grad, b.grad)
