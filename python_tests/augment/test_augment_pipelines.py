"""Both backends: output shapes, dtypes and layout, determinism, two differing views."""

import numpy as np
import pytest
import torch

from csl_ext.augment import make_augmentation

METHODS2 = ["simclr", "moco_v2", "byol", "amdim", "yadim"]
ALL = METHODS2 + ["cpc_v2", "eval"]


def backend_or_skip(backend):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    return backend


def loader(method, backend, images=None, labels=None, *, size=16, batch_size=8, seed=0, **kw):
    aug = make_augmentation(method, size, backend=backend_or_skip(backend), **kw)
    nw = 0 if backend == "torchvision" else 1
    return aug.loader(images, labels, batch_size=batch_size, num_workers=nw, seed=seed, device="cpu", shuffle=False)


def check_batch(method, batch, b, size, with_labels=True):
    n_views = {"cpc_v2": 1, "eval": 1}.get(method, 2)
    assert len(batch) == n_views + int(with_labels)
    for v in batch[:n_views]:
        if method == "cpc_v2":
            grid = (size - size // 4) // (size // 8) + 1  # p = S/4, stride p/2 -> 7
            assert v.shape == (b, grid, grid, 3, size // 4, size // 4)
        else:
            assert v.shape == (b, 3, size, size)  # NCHW
        assert v.dtype == torch.float32 and v.is_contiguous() and v.device.type == "cpu"
        assert torch.isfinite(v).all()
        # normalised: roughly zero mean, unit scale (pixels span [-2.2, 2.7] for ImageNet stats)
        assert -3.5 < v.min() < 0 < v.max() < 3.5
    if with_labels:
        assert batch[-1].shape == (b,) and batch[-1].dtype == torch.int64


@pytest.mark.parametrize("backend", ["dali", "torchvision"])
@pytest.mark.parametrize("method", ALL)
def test_array_input_shapes(method, backend, images16):
    batches = list(loader(method, backend, images16[:20], np.arange(20)))
    assert [b[0].shape[0] for b in batches] == [8, 8, 4]  # partial last batch kept
    for b in batches:
        check_batch(method, b, b[0].shape[0], 16)
    assert torch.equal(torch.cat([b[-1] for b in batches]), torch.arange(20))


@pytest.mark.parametrize("backend", ["dali", "torchvision"])
@pytest.mark.parametrize("method", ["simclr", "cpc_v2", "eval"])
def test_no_labels_means_no_label_output(method, backend, images16):
    (batch,) = list(loader(method, backend, images16[:8]))
    check_batch(method, batch, 8, 16, with_labels=False)


@pytest.mark.parametrize("backend", ["dali", "torchvision"])
@pytest.mark.parametrize("method", ALL)
def test_jpeg_folder_input_of_mixed_sizes(method, backend, make_images, write_folder):
    imgs = [make_images(1, s, seed=s)[0] for s in (24, 40, 32, 48, 24, 40)]
    imgs = [im[:, : im.shape[1] * 3 // 4] for im in imgs]  # non-square, H != W
    root = write_folder(imgs, [0, 1, 0, 1, 2, 2], ext="jpg", name=f"{method}_{backend}")
    aug = make_augmentation(method, 16, backend=backend_or_skip(backend))
    batches = list(aug.loader(file_root=root, batch_size=4, num_workers=1, device="cpu"))
    assert sorted(torch.cat([b[-1] for b in batches]).tolist()) == [0, 0, 1, 1, 2, 2]
    for b in batches:
        check_batch(method, b, b[0].shape[0], 16)


def test_amdim_translate_mode_runs(images16):
    for backend in ("dali", "torchvision"):
        (b,) = list(loader("amdim", backend, images16[:8], jitter_mode="translate"))
        check_batch("amdim", b, 8, 16, with_labels=False)


@pytest.mark.parametrize("backend", ["dali", "torchvision"])
@pytest.mark.parametrize("method", ["simclr", "byol", "cpc_v2", "yadim"])
def test_seeded_determinism(method, backend, images16):
    kw = dict(blur=True) if method in ("simclr", "byol") else {}

    def run(seed):
        return [t for b in loader(method, backend, images16[:16], seed=seed, **kw) for t in b]

    a, b, c = run(3), run(3), run(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("backend", ["dali", "torchvision"])
@pytest.mark.parametrize("method", METHODS2)
def test_two_views_of_one_image_differ(method, backend, images16):
    for v0, v1 in ((b[0], b[1]) for b in loader(method, backend, images16[:32], np.arange(32))):
        per_sample = (v0 - v1).abs().flatten(1).amax(1)
        assert bool((per_sample > 0.05).all())


def test_epochs_reshuffle(images16):
    aug = make_augmentation("eval", 16, backend=backend_or_skip("dali"))
    dl = aug.loader(images16[:24], np.arange(24), batch_size=8, num_workers=1, device="cpu")
    e1 = torch.cat([b[-1] for b in dl])
    e2 = torch.cat([b[-1] for b in dl])
    assert sorted(e1.tolist()) == sorted(e2.tolist()) == list(range(24))
    assert not torch.equal(e1, e2)


def test_bad_inputs_raise_value_error(images16):
    for backend in ("dali", "torchvision"):
        aug = make_augmentation("simclr", 16, backend=backend_or_skip(backend))
        with pytest.raises(ValueError, match="images"):
            aug.loader(images16.astype(np.float32), device="cpu")
        with pytest.raises(ValueError, match="batch_size"):
            aug.loader(images16, batch_size=0, device="cpu")
        with pytest.raises(ValueError, match="file_root|images"):
            aug.loader(device="cpu")
        with pytest.raises(ValueError, match="return_images"):
            aug.loader(images16, return_images=True, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", ALL)
def test_gpu_pipeline_outputs_on_cuda(method, images16, make_images, write_folder):
    aug = make_augmentation(method, 16, backend=backend_or_skip("dali"))
    (b,) = list(aug.loader(images16[:8], np.arange(8), batch_size=8, device="cuda"))
    assert all(t.device.type == "cuda" for t in b)
    check_batch(method, [t.cpu() for t in b], 8, 16)
    root = write_folder(make_images(4, 24), [0, 1, 0, 1], ext="jpg")  # "mixed" decoding
    (b,) = list(aug.loader(file_root=root, batch_size=4, device="cuda"))
    assert all(t.device.type == "cuda" for t in b)


def test_dali_output_does_not_depend_on_thread_count(images16):
    aug = make_augmentation("byol", 16, backend=backend_or_skip("dali"), blur=True)

    def run(nt):
        return [t for b in aug.loader(images16[:32], batch_size=16, num_workers=nt, seed=3, device="cpu") for t in b]

    assert all(torch.equal(x, y) for x, y in zip(run(1), run(2)))
