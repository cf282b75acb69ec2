"""numerics.perturbations.temperature_sweep (issue 18): the authors' one-call ``diffeo_imgs`` with this package's
deform / temperature formulas / matched noise, against its definition: the temperature grid (the authors' log-spaced
window, or T(delta) per cut-off), the seeds replayed, |eta_i| = |tau x_i - x_i| image by image (1e-12: two float64
norms of the same vector), reproducibility, the torch path, bad arguments."""
from __future__ import annotations

import math

import numpy as np
import pytest

from numerics.diffeo import deform, temperature_for_displacement, temperature_range
from numerics.perturbations import SweepPoint, temperature_sweep
from numerics.seeds import generator


def _images(B=6, n=12, seed=0):
    return np.random.default_rng(seed).standard_normal((B, 2, n, n))


def test_sweep_grid_seeds_and_noise():
    x = _images()
    pts = temperature_sweep(x, [2, 3], n_T=4, seed=5)
    assert [p.c for p in pts] == [2.0] * 4 + [3.0] * 4
    rng = generator(5)
    for i, c in enumerate((2, 3)):
        lo, hi = temperature_range(12, c, method="paper")
        Ts = np.logspace(math.log10(lo / 2), math.log10(2 * hi), 4)
        np.testing.assert_allclose([p.T for p in pts[4 * i: 4 * i + 4]], Ts, rtol=1e-14)
        for p in pts[4 * i: 4 * i + 4]:
            s_d, s_n = rng.integers(0, 2 ** 63 - 1, size=2)
            assert np.array_equal(p.x_diffeo, deform(x, p.T, c, seed=int(s_d)))
            nd = np.linalg.norm((p.x_diffeo - x).reshape(6, -1), axis=1)
            nn = np.linalg.norm((p.x_noise - x).reshape(6, -1), axis=1)
            np.testing.assert_allclose(nn, nd, rtol=1e-12)            # |eta_i| = |tau x_i - x_i|
            assert isinstance(p, SweepPoint) and set(p.as_dict()) == {"c", "T", "delta", "delta_exact"}
    again = temperature_sweep(x, [2, 3], n_T=4, seed=5)
    assert all(np.array_equal(a.x_noise, b.x_noise) for a, b in zip(pts, again))
    other = temperature_sweep(x, [2, 3], n_T=4, seed=6)
    assert not np.array_equal(other[0].x_diffeo, pts[0].x_diffeo)


def test_sweep_at_fixed_displacement_and_explicit_temperatures():
    x = _images()
    pts = temperature_sweep(x, [3, 5], delta=1.0, seed=0)
    assert len(pts) == 2
    for p in pts:
        assert p.T == pytest.approx(temperature_for_displacement(1.0, p.c, 12, method="paper"), rel=1e-14)
        assert p.delta == pytest.approx(1.0, rel=1e-12) and p.delta_exact > 1.0   # the paper's law is ~25 % low
    ex = temperature_sweep(x, [3], delta=1.0, method="exact", seed=0)[0]
    assert ex.delta == pytest.approx(1.0, rel=1e-12) and ex.delta_exact == pytest.approx(1.0, rel=1e-12)
    fixed = temperature_sweep(x, [3], temperatures=[1e-3, 2e-3], noise="mean", seed=1)
    assert [p.T for p in fixed] == [1e-3, 2e-3]
    r = [np.linalg.norm((p.x_noise - x).reshape(6, -1), axis=1) for p in fixed]
    assert np.allclose(r[0], r[0][0])                                   # one rms radius for all images


def test_sweep_torch_equals_numpy():
    torch = pytest.importorskip("torch")
    x = _images()
    a = temperature_sweep(x, [3], n_T=2, seed=2)
    b = temperature_sweep(torch.from_numpy(x), [3], n_T=2, seed=2)
    for p, q in zip(a, b):
        assert isinstance(q.x_noise, torch.Tensor)
        np.testing.assert_allclose(q.x_diffeo.numpy(), p.x_diffeo, atol=1e-12)


@pytest.mark.parametrize("kw, name", [
    (dict(cs=[]), "cs"), (dict(cs=3), "cs"), (dict(cs=[3], n_T=0), "n_T"), (dict(cs=[3], T_below=0.0), "T_below"),
    (dict(cs=[3], T_above=math.nan), "T_above"), (dict(cs=[3], delta=-1.0), "delta"),
    (dict(cs=[3], temperatures=[0.0]), "temperatures"), (dict(cs=[3], temperatures=[1e-3], delta=1.0), "temperatures"),
    (dict(cs=[3], seed=-1), "seed"),
])
def test_sweep_bad_arguments(kw, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        temperature_sweep(_images(), **kw)
    with pytest.raises(ValueError, match=r"^x must"):
        temperature_sweep(np.zeros((4, 4)), [3])
