"""AMDIMEncoder against a re-derivation of the AMDIM authors' network.

`RefEncoder` below is written from amdim-public's model.py (Encoder,
Conv3x3, ConvResNxN, ConvResBlock, MaybeBatchNorm2d, FakeRKHSConvNet and
their ``init_weights``), kept as close to that file's computation as a
short transcription allows. The tests check that csl_ext's encoder runs the
same layers in the same order (forward hooks), gives the same embeddings
with the same weights, starts from the same initialisation, and so starts
with initial NCE scores of the reference's size: the old encoder (no BN on
the embeddings, default init) gave scores ~100x smaller.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from csl_ext.data.digits import load_digits
from csl_ext.encoders import AMDIMEncoder


# -- the reference, re-derived ---------------------------------------------------------------------
class RefMaybeBN(nn.Module):
    def __init__(self, c, use_bn):
        super().__init__()
        self.bn, self.use_bn = nn.BatchNorm2d(c), use_bn

    def forward(self, x):
        return self.bn(x) if self.use_bn else x


class RefConv(nn.Module):  # Conv3x3 with use_bn=False: conv (bias) -> ReLU, optional reflect pad
    def __init__(self, c_in, c_out, k, s, pad=0):
        super().__init__()
        self.pad, self.conv = pad, nn.Conv2d(c_in, c_out, k, s, bias=True)

    def forward(self, x):
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return F.relu(self.conv(x))


class RefResNxN(nn.Module):
    def __init__(self, c_in, c_out, k, s, use_bn):
        super().__init__()
        assert c_out >= c_in
        self.c_in, self.c_out, self.k, self.s = c_in, c_out, k, s
        self.conv1 = nn.Conv2d(c_in, c_out, k, s, bias=False)
        self.bn1 = RefMaybeBN(c_out, use_bn)
        self.conv2 = nn.Conv2d(c_out, c_out, 1, bias=False)

    def init_weights(self):
        nn.init.kaiming_uniform_(self.conv1.weight, a=math.sqrt(5))
        nn.init.constant_(self.conv2.weight, 0.0)

    def forward(self, x):
        h2 = self.conv2(F.relu(self.bn1(self.conv1(x))))
        h3 = F.avg_pool2d(x, self.k, self.s)
        if self.c_out > self.c_in:
            h3 = F.pad(h3, (0, 0, 0, 0, 0, self.c_out - self.c_in))
        return h2 + h3  # no ReLU on the sum


def ref_block(c_in, c_out, k, s, depth, use_bn):
    rest = [RefResNxN(c_out, c_out, 1, 1, use_bn) for _ in range(depth - 1)]
    return nn.Sequential(RefResNxN(c_in, c_out, k, s, use_bn), *rest)


class RefRKHS(nn.Module):
    def __init__(self, c_in, c_out, use_bn):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn_hid = RefMaybeBN(c_out, use_bn)
        self.conv2 = nn.Conv2d(c_out, c_out, 1, bias=False)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=True)
        self.bn_out = nn.BatchNorm2d(c_out)
        if c_out >= c_in:
            eye = torch.zeros(c_out, c_in, 1, 1, dtype=torch.bool)
            for i in range(c_in):
                eye[i, i] = True
            self.shortcut.weight.data.uniform_(-0.01, 0.01)
            self.shortcut.weight.data.masked_fill_(eye, 1.0)

    def init_weights(self):
        nn.init.kaiming_uniform_(self.conv1.weight, a=math.sqrt(5))
        nn.init.constant_(self.conv2.weight, 0.0)

    def forward(self, x):
        return self.bn_out(self.conv2(F.relu(self.bn_hid(self.conv1(x)))) + self.shortcut(x))


class RefEncoder(nn.Module):
    def __init__(self, ndf, n_rkhs, depth, size, use_bn=False):
        super().__init__()
        wide = 4 if size == 32 else 8
        c7 = ndf * wide
        layers = [RefConv(3, ndf, 5, 2, pad=2), RefConv(ndf, ndf, 3, 1)] if size == 128 else [RefConv(3, ndf, 3, 1)]
        if size == 32:
            layers += [
                RefResNxN(ndf, ndf, 1, 1, use_bn),
                ref_block(ndf, 2 * ndf, 4, 2, depth, use_bn),
                ref_block(2 * ndf, 4 * ndf, 2, 2, depth, use_bn),
            ]
        else:
            layers += [
                ref_block(ndf, 2 * ndf, 4, 2, depth, use_bn),
                ref_block(2 * ndf, 4 * ndf, 4, 2, depth, use_bn),
                ref_block(4 * ndf, 8 * ndf, 2, 2, depth, use_bn),
            ]
        layers += [
            RefMaybeBN(c7, use_bn),
            ref_block(c7, c7, 3, 1, depth, use_bn),
            ref_block(c7, c7, 3, 1, depth, use_bn),
            RefResNxN(c7, n_rkhs, 3, 1, use_bn),
            nn.BatchNorm2d(n_rkhs),
        ]
        self.layer_list = nn.ModuleList(layers)
        self.rkhs_7 = RefRKHS(c7, n_rkhs, use_bn)
        self.rkhs_5 = RefRKHS(c7, n_rkhs, use_bn)
        for m in self.modules():
            if isinstance(m, (RefResNxN, RefRKHS)):
                m.init_weights()

    def forward(self, x):
        acts = []
        for layer in self.layer_list:
            x = layer(x)
            acts.append(x)
        by_size = {a.shape[-1]: a for a in acts}  # the last activation of each size, as dim2layer
        return [self.rkhs_7(by_size[7]), self.rkhs_5(by_size[5]), by_size[1]]


# -- helpers ----------------------------------------------------------------------------------------
def called_layers(model, x):
    """(kind, parameter shapes, module) of every Conv2d / BatchNorm2d in call order."""
    calls, hooks = [], []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
            hooks.append(m.register_forward_hook(lambda mod, i, o: calls.append(mod)))
    model(x)
    for h in hooks:
        h.remove()
    return [(type(m).__name__, tuple(tuple(p.shape) for p in m.parameters()), m) for m in calls]


def digits(n, size=32):
    data = load_digits("train", image_size=size)
    images = torch.as_tensor(data.images[:n]).float() / 255
    return (images - 0.5) / 0.25


CONFIGS = [(32, 8, 64, 2, False), (32, 8, 64, 1, True), (64, 4, 64, 1, False), (128, 4, 64, 1, False)]


@pytest.mark.parametrize("size,ndf,n_rkhs,depth,use_bn", CONFIGS)
def test_same_layers_in_the_same_order_and_same_embeddings(size, ndf, n_rkhs, depth, use_bn):
    torch.manual_seed(0)
    ours = AMDIMEncoder(ndf=ndf, n_rkhs=n_rkhs, depth=depth, image_size=size, use_bn=use_bn).double()
    ref = RefEncoder(ndf, n_rkhs, depth, size, use_bn).double()
    x = torch.randn(6, 3, size, size, dtype=torch.float64)
    ours_calls, ref_calls = called_layers(ours, x), called_layers(ref, x)
    assert [c[:2] for c in ours_calls] == [c[:2] for c in ref_calls]
    # every parameter and buffer of ours is in a called layer: nothing is left out of the comparison
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == sum(p.numel() for c in ours_calls for p in c[2].parameters())
    with torch.no_grad():
        for (_, _, a), (_, _, b) in zip(ours_calls, ref_calls):
            for pa, pb in zip(a.parameters(), b.parameters()):
                pb.copy_(torch.randn_like(pb) * 0.1)  # non-trivial weights (conv2 is zero at init)
                pa.copy_(pb)
    for got, want in zip(ours(x), ref(x)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size,ndf,n_rkhs,depth,use_bn", CONFIGS[:2])
def test_initialisation_is_the_references(size, ndf, n_rkhs, depth, use_bn):
    """Same seed, same construction order of the random layers: identical initial weights."""
    ours_calls = called_layers(
        AMDIMEncoder(ndf=ndf, n_rkhs=n_rkhs, depth=depth, image_size=size, use_bn=use_bn), torch.randn(2, 3, size, size)
    )
    ref_calls = called_layers(RefEncoder(ndf, n_rkhs, depth, size, use_bn), torch.randn(2, 3, size, size))
    for (kind, _, a), (_, _, b) in zip(ours_calls, ref_calls):
        for pa, pb in zip(a.parameters(), b.parameters()):
            if kind == "Conv2d" and pa.dim() == 4:  # zero exactly where the reference zeroes (second convs)
                assert bool(pa.any()) == bool(pb.any())
    # the RKHS heads' shortcuts start near the identity
    shortcuts = [c[2] for c in ours_calls if c[0] == "Conv2d" and c[2].bias is not None and c[2].kernel_size == (1, 1)]
    for conv in shortcuts:
        w = conv.weight[:, :, 0, 0]
        eye = torch.eye(*w.shape, dtype=torch.bool)
        assert torch.all(w[eye] == 1) and w[~eye].abs().max() <= 0.01


def test_initial_embedding_is_batchnormed_average_pool_of_the_stem():
    """From first principles: with every residual branch at zero, the 1x1
    embedding is BN(zero-padded average pools of the stem's ReLU features);
    so its first ndf channels have unit mean square over the batch and the
    rest are 0, and the mean positive score <a_i, a_i> / sqrt(D) is ndf / sqrt(D)."""
    torch.manual_seed(0)
    ndf, n_rkhs = 8, 64
    enc = AMDIMEncoder(ndf=ndf, n_rkhs=n_rkhs, depth=2, image_size=32)
    x = digits(64)
    stem = F.relu(F.conv2d(x, enc.to_7x7[0][0].weight, enc.to_7x7[0][0].bias))  # 30x30
    pooled = F.avg_pool2d(F.avg_pool2d(stem, 4, 2), 2, 2)  # 14 -> 7
    pooled = F.avg_pool2d(F.avg_pool2d(F.avg_pool2d(pooled, 3, 1), 3, 1), 3, 1)  # 5 -> 3 -> 1
    expected = F.batch_norm(F.pad(pooled, (0, 0, 0, 0, 0, n_rkhs - ndf)), None, None, training=True)
    h1 = enc(x)[-1]
    torch.testing.assert_close(h1, expected, rtol=1e-4, atol=1e-4)
    a = h1.flatten(1)
    mean_positive = (a * a).sum(1).mean() / math.sqrt(n_rkhs)
    var = pooled.var(dim=(0, 2, 3), unbiased=False)  # per channel; BN divides by sqrt(var + eps)
    torch.testing.assert_close(mean_positive, (var / (var + 1e-5)).sum() / math.sqrt(n_rkhs), rtol=1e-4, atol=0)
    assert mean_positive > 0.9 * ndf / math.sqrt(n_rkhs)


def nce_score_std(encoder, x1, x2):
    """std of AMDIM's raw scores <global(x1)_i, local(x2)_j,loc> / sqrt(D), 1x1 -> 7x7."""
    with torch.no_grad():
        g = encoder(x1)[-1].flatten(1)  # N x D
        local = encoder(x2)[0]  # N x D x 7 x 7
    scores = torch.einsum("nd,mdhw->nmhw", g, local) / math.sqrt(g.shape[1])
    return scores.std().item()


def test_initial_nce_scores_are_the_size_of_the_references():
    torch.manual_seed(0)
    x = digits(64)
    x2 = torch.roll(x, shifts=(1, 1), dims=(2, 3))  # a second, shifted view
    ours, ref = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        ours.append(nce_score_std(AMDIMEncoder(ndf=16, n_rkhs=128, depth=2, image_size=32), x, x2))
        torch.manual_seed(seed)
        ref.append(nce_score_std(RefEncoder(16, 128, 2, 32), x, x2))
    ratio = sum(ours) / sum(ref)
    assert 0.8 < ratio < 1.25, (ours, ref)
    assert min(ref) > 0.1  # the reference's scores are O(1): the tanh clip and regulariser see them
