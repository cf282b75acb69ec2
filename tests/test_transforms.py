"""verify.transforms.RandomDiffeo: seeded, in the window, the documented Beta laws, differentiable, validated; the
torchvision v2 shape rule, dtypes, p, same_on_batch, per-sample draws, replay and c_range from 1 (issue 12)."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from numerics import diffeo as nd
from numerics.diffeo import temperature_range
from verify.transforms import RandomDiffeo


def test_fixed_parameters_and_seed():
    x = torch.randn(3, 2, 16, 16, dtype=torch.float64, requires_grad=True)
    a = RandomDiffeo(T=0.01, c=3, seed=1)(x)
    b = RandomDiffeo(T=0.01, c=3, seed=1)(x)
    assert torch.equal(a, b) and not torch.equal(a, x)
    a.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_sampled_parameters_follow_the_documented_beta_laws():
    # module docstring: c = floor(c_min + B_c (c_max + 1 - c_min)), T = T_min + B_T (T_max - T_min), B ~ Beta(α, β)
    # with α = s r/(r+1), β = s/(r+1). Non-default (s, r) so that the laws are not uniform:
    # beta_c = (3, 2) -> Beta(2, 1); beta_T = (4, 0.5) -> Beta(4/3, 8/3).
    N = 2000
    t = RandomDiffeo(c_range=(2, 6), beta_c=(3.0, 2.0), beta_T=(4.0, 0.5), seed=0)
    draws = [t.draw_parameters(32) for _ in range(N)]
    cs = np.array([c for _, c in draws])
    # c is discrete: chi² goodness of fit, P(c = k) = F((k+1-c_min)/5) - F((k-c_min)/5) with F the Beta(2, 1) cdf
    p = np.diff(stats.beta(2, 1).cdf(np.arange(6) / 5))
    counts = np.array([(cs == k).sum() for k in range(2, 7)])
    assert counts.sum() == N
    # seeded (deterministic) draw; p-value threshold 1e-3 (observed 0.40). Swapping α and β gives p ~ 0, a uniform
    # law gives p ~ 1e-150 (checked when the test was written), so the test discriminates.
    assert stats.chisquare(counts, N * p).pvalue > 1e-3
    # T: its position u = (T - T_min)/(T_max - T_min) inside the paper window of the drawn c is Beta(4/3, 8/3)
    windows = {c: temperature_range(32, c, method="paper") for c in range(2, 7)}
    u = np.array([(T - windows[c][0]) / (windows[c][1] - windows[c][0]) for T, c in draws])
    assert np.all((u >= 0) & (u <= 1))
    assert stats.kstest(u, stats.beta(4 / 3, 8 / 3).cdf).pvalue > 1e-3  # observed 0.069; swapped α, β: p ~ 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(T=0.01), r"^c or c_range "),
        (dict(c=3), r"^T must be given"),
        (dict(T=0.01, c=3, c_range=(2, 4)), r"^c_range and c "),
        (dict(c_range=(0, 4)), r"^c_range "),  # issue 12: c_min = 1 is now allowed (the reference's cutmin=1)
        (dict(c_range=(5, 4)), r"^c_range "),
        (dict(c_range=5), r"^c_range "),
        (dict(c_range=(2, 4), beta_c=(0.0, 1.0)), r"^beta_c "),
        (dict(c_range=(2, 4), beta_c=(1.0,)), r"^beta_c "),
        (dict(c_range=(2, 4), beta_T=("a", 1.0)), r"^beta_T "),
        (dict(c_range=(2, 4), T=0.01), r"^T must not be given with c_range"),
        (dict(T=-1.0, c=3), r"^T "),
        (dict(T=float("nan"), c=3), r"^T "),
        (dict(T=0.01, c=0), r"^c "),
        (dict(T=0.01, c=3, cutoff="x"), r"^cutoff "),
        (dict(T=0.01, c=3, interp="x"), r"^interp "),
        (dict(c_range=(2, 4), window="x"), r"^window "),
        (dict(T=0.01, c=3, seed=-1), r"^seed "),
    ],
)
def test_bad_configuration_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandomDiffeo(**kwargs)


def test_c_range_too_large_for_the_image_raises_on_the_first_call():
    # paper window on 16-pixel images: c < 2·16/π = 10.19, so c = 11 has none. beta_c = (50, 0.02) gives
    # B_c ~ Beta(0.98, 49.0), which draws c = 2 almost always; the whole range is checked on the first call, so
    # every seed raises even though the drawn c has a window.
    x = torch.zeros(2, 16, 16)
    for seed in range(5):
        with pytest.raises(ValueError, match=r"^c_range=\(2, 11\) is too large for images of side n=16"):
            RandomDiffeo(c_range=(2, 11), beta_c=(50.0, 0.02), seed=seed)(x)
    assert RandomDiffeo(c_range=(2, 10), seed=0)(x).shape == x.shape


# --------------------------------------------------------------------------------------------- issue 12
class Image(torch.Tensor):
    """A tv_tensors.Image-like subclass of torch.Tensor (torchvision is not installable here)."""


def _image(seed=0, channels=3, n=32):
    """One (C, n, n) image whose channels are identical."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, n, n, generator=g).repeat(channels, 1, 1)


@pytest.mark.parametrize("kwargs", [dict(T=0.01, c=3), dict(c_range=(1, 8)), dict(c_range=(2, 8), draw="sample")])
def test_one_image_gets_one_field_shared_by_its_channels(kwargs):
    # issue 12: the old RandomDiffeo deformed each channel of a (3, H, W) image by its own field (up to 0.2-0.8 apart)
    img = _image()
    for seed in range(5):
        y = RandomDiffeo(**kwargs, seed=seed)(img)
        assert y.shape == img.shape and not torch.equal(y, img)
        assert torch.equal(y[0], y[1]) and torch.equal(y[0], y[2])
    # (H, W) is one image too, deformed like one channel of the (1, H, W) image with the same draws
    a = RandomDiffeo(**kwargs, seed=9)(img[0])
    b = RandomDiffeo(**kwargs, seed=9)(img[:1])
    assert a.shape == img.shape[1:] and torch.equal(a, b[0])


def test_batch_gets_one_field_per_image_shared_by_its_channels():
    x = _image().unsqueeze(0).repeat(6, 1, 1, 1)  # 6 identical images with identical channels
    t = RandomDiffeo(c_range=(2, 6), seed=0)
    y = t(x)
    for b in range(6):
        assert torch.equal(y[b, 0], y[b, 1]) and torch.equal(y[b, 0], y[b, 2])
    assert all(not torch.equal(y[0], y[b]) for b in range(1, 6))
    # and it is deform with batch_dims=1 on the recorded fields (one image: batch_dims=0)
    assert t.last_params.diffeo.batch == 6
    assert torch.equal(y, nd.deform(x, diffeo=t.last_params.diffeo, batch_dims=1))
    z = t(x[0])
    assert torch.equal(z, nd.deform(x[0], diffeo=t.last_params.diffeo, batch_dims=0))


def test_shapes_types_and_dtypes():
    t = RandomDiffeo(T=0.01, c=3, seed=0)
    for bad in (torch.zeros(8), torch.zeros(2, 2, 3, 8, 8)):
        with pytest.raises(ValueError, match=r"^x must have shape \(H, W\), \(C, H, W\) or \(B, C, H, W\)"):
            t(bad)
    with pytest.raises(TypeError, match=r"^x must be a torch\.Tensor or a numpy array"):
        t([[0.0] * 8] * 8)
    with pytest.raises(ValueError, match=r"^x \(a numpy array\) must be float16, float32, float64 or uint8"):
        t(np.zeros((8, 8), dtype=np.int16))
    # tensor subclasses pass through with their type, on the numba path, the torch path and a partial p
    img = _image().as_subclass(Image)
    assert type(t(img)) is Image
    assert type(t(img.clone().requires_grad_())) is Image
    assert type(RandomDiffeo(T=0.01, c=3, p=0.5, seed=1)(img.unsqueeze(0).repeat(8, 1, 1, 1))) is Image
    # uint8 in, uint8 out (the float32 result rounded); half precision kept
    u8 = (_image() * 255).round().to(torch.uint8)
    y = RandomDiffeo(T=0.01, c=3, seed=2)(u8)
    y32 = RandomDiffeo(T=0.01, c=3, seed=2)(u8.float())
    assert y.dtype == torch.uint8 and torch.equal(y, y32.round().clamp(0, 255).to(torch.uint8))
    for dtype in (torch.float16, torch.bfloat16):
        h = RandomDiffeo(T=0.01, c=3, seed=2)(u8.to(dtype))
        assert h.dtype == dtype
        torch.testing.assert_close(h.float(), y32, rtol=1e-2, atol=0.5)  # half precision of values up to 255
    # numpy arrays work too and stay numpy
    a = RandomDiffeo(T=0.01, c=3, seed=2)(u8.numpy())
    assert isinstance(a, np.ndarray) and a.dtype == np.uint8 and np.array_equal(a, y.numpy())


def test_p_zero_is_the_identity_and_p_one_always_deforms():
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for seed in range(10):
        t0 = RandomDiffeo(c_range=(1, 4), p=0.0, seed=seed)
        assert t0(x) is x and not t0.last_params.applied.any()
        t1 = RandomDiffeo(c_range=(1, 4), p=1.0, seed=seed)
        y = t1(x)
        assert t1.last_params.applied.all() and all(not torch.equal(y[b], x[b]) for b in range(8))


def test_p_is_a_per_sample_probability():
    # 4000 samples at p = 0.3: the number deformed is Binomial(4000, 0.3), s.d. 29; 4 s.d. (the drawn mask is
    # also checked against the output: deformed exactly where applied)
    x = torch.rand(4000, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    t = RandomDiffeo(T=0.01, c=2, p=0.3, seed=3)
    y = t(x)
    applied = torch.from_numpy(t.last_params.applied.copy())
    changed = (y != x).flatten(1).any(1)
    assert torch.equal(changed, applied)
    assert abs(int(applied.sum()) - 1200) < 4 * math.sqrt(4000 * 0.3 * 0.7)
    assert t.last_params.diffeo.batch == int(applied.sum())


def test_same_on_batch():
    x = _image(n=16).unsqueeze(0).repeat(5, 1, 1, 1)
    t = RandomDiffeo(c_range=(2, 4), same_on_batch=True, seed=0)
    y = t(x)
    assert all(torch.equal(y[0], y[b]) for b in range(5)) and not torch.equal(y[0], x[0])
    assert t.last_params.diffeo.batch == 1
    # with p, one decision for the whole batch: over 40 calls at p = 0.5 both outcomes occur, never a mixture
    tp = RandomDiffeo(c_range=(2, 4), same_on_batch=True, p=0.5, seed=1)
    outcomes = set()
    for _ in range(40):
        tp(x)
        a = tp.last_params.applied
        assert a.all() or not a.any()
        outcomes.add(bool(a[0]))
    assert outcomes == {True, False}
    with pytest.raises(ValueError, match=r"^draw='sample' .* contradicts same_on_batch=True"):
        RandomDiffeo(c_range=(2, 4), same_on_batch=True, draw="sample")


def test_per_sample_draws_follow_the_documented_laws():
    # draw="sample": every sample gets its own (c, T) from the laws of draw_parameters (tested above per call):
    # chi² for c (Beta(2, 1) via beta_c = (3, 2)), KS for the position of T in the paper window (Beta(4/3, 8/3));
    # thresholds 1e-3 as above (observed p-values 0.69 and 0.33 when the test was written)
    N = 3000
    t = RandomDiffeo(c_range=(2, 6), beta_c=(3.0, 2.0), beta_T=(4.0, 0.5), draw="sample", seed=0)
    t(torch.zeros(N, 1, 32, 32))
    prm = t.last_params
    cs, Ts = prm.c, prm.T
    p = np.diff(stats.beta(2, 1).cdf(np.arange(6) / 5))
    counts = np.array([(cs == k).sum() for k in range(2, 7)])
    assert stats.chisquare(counts, N * p).pvalue > 1e-3
    windows = {c: temperature_range(32, c, method="paper") for c in range(2, 7)}
    u = np.array([(T - windows[c][0]) / (windows[c][1] - windows[c][0]) for T, c in zip(Ts, cs)])
    assert stats.kstest(u, stats.beta(4 / 3, 8 / 3).cdf).pvalue > 1e-3
    # the fields carry each sample's (c, T); the default draw="call" gives one (c, T) for the whole call
    assert np.array_equal(prm.diffeo.c, cs) and np.array_equal(prm.diffeo.T, Ts)
    t_call = RandomDiffeo(c_range=(2, 6), seed=0)
    t_call(torch.zeros(50, 1, 32, 32))
    assert np.unique(t_call.last_params.c).size == 1 and np.unique(t_call.last_params.T).size == 1


def test_replay_on_another_tensor_and_approximate_inverse():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g)
    mask = (torch.rand(4, 1, 32, 32, generator=g) > 0.5).to(torch.uint8)
    t = RandomDiffeo(c_range=(1, 8), p=0.75, draw="sample", seed=4)
    y = t(x)
    prm = t.last_params
    # the same parameters give the same output, through forward(params=) and replay()
    assert torch.equal(t(x, params=prm), y) and torch.equal(t.replay(x), y)
    assert t.last_params is prm  # replaying does not draw
    # on a mask with nearest interpolation: the mask's values only, deformed by the same fields (deform on the
    # deformed samples, the others unchanged)
    m = t.replay(mask, interp="nearest")
    assert m.dtype == torch.uint8 and set(torch.unique(m).tolist()) <= {0, 1}
    idx = torch.from_numpy(prm.applied.copy())
    assert torch.equal(m[~idx], mask[~idx])
    assert torch.equal(m[idx], nd.deform(mask[idx], diffeo=prm.diffeo, interp="nearest"))
    # the approximate inverse brings a smooth image back closer than it went (first order: see test_diffeo)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    smooth = (torch.sin(yy / 9) * torch.cos(xx / 11)).expand(4, 3, 32, 32).contiguous()
    ts = RandomDiffeo(c_range=(2, 4), seed=5)
    ys = ts(smooth)
    back = ts.replay(ys, ts.last_params.approximate_inverse())
    assert (back - smooth).norm() < 0.5 * (ys - smooth).norm()
    # wrong shapes or types of params
    with pytest.raises(ValueError, match=r"^params were drawn for 4 image\(s\) of 32x32, x has 1 of 32x32"):
        t.replay(x[0])
    with pytest.raises(TypeError, match=r"^params must be the DiffeoParams"):
        t(x, params={"c": 3})
    with pytest.raises(ValueError, match=r"^replay needs params"):
        RandomDiffeo(T=0.01, c=3).replay(x)
    with pytest.raises(ValueError, match=r"^interp "):
        t.replay(x, interp="cubic")


def test_c_range_from_one():
    # issue 12: c_range=(1, 4) works (the reference's cutmin=1); c = 1 draws T in the single-mode window
    t = RandomDiffeo(c_range=(1, 4), beta_c=(2.0, 0.25), draw="sample", seed=0)  # Beta(0.4, 1.6): c = 1 often
    x = torch.rand(400, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    y = t(x)
    prm = t.last_params
    ones = prm.c == 1
    assert ones.sum() > 50 and (~ones).sum() > 50
    lo, hi = nd.single_mode_temperature_range(32)
    assert np.all((prm.T[ones] >= lo) & (prm.T[ones] <= hi))
    assert all(not torch.equal(y[b], x[b]) for b in range(400))
    # the paper cut-off keeps no mode at c = 1: refused on the first call, naming c = 1
    with pytest.raises(ValueError, match=r"^c_range=\(1, 4\) includes c = 1, which has no window"):
        RandomDiffeo(c_range=(1, 4), cutoff="paper", seed=0)(x[0])


def test_repr_shows_the_settings():
    r = repr(RandomDiffeo(c_range=(1, 15), p=0.8, interp="gaussian"))
    assert r == ("RandomDiffeo(c_range=(1, 15), beta_c=(2.0, 1.0), beta_T=(2.0, 1.0), window='paper', draw='call', "
                 "p=0.8, same_on_batch=False, cutoff='code', interp='gaussian')")
    assert repr(RandomDiffeo(T=0.01, c=3)) == ("RandomDiffeo(T=0.01, c=3.0, p=1.0, same_on_batch=False, "
                                               "cutoff='code', interp='linear')")


def test_unseeded_transform_follows_torch_manual_seed():
    # seed=None draws each call from torch's global generator: torch.manual_seed (and DataLoader worker seeding)
    # reproduce it, and two calls differ
    x = _image(n=16)
    torch.manual_seed(0)
    a, b = RandomDiffeo(c_range=(2, 4))(x), RandomDiffeo(c_range=(2, 4))(x)
    torch.manual_seed(0)
    assert torch.equal(RandomDiffeo(c_range=(2, 4))(x), a) and not torch.equal(a, b)


def test_gaussian_interpolation_in_the_transform():
    # a constant image stays exactly constant (normalised weights), whatever the field
    x = torch.full((2, 3, 16, 16), 0.37, dtype=torch.float64)
    assert torch.equal(RandomDiffeo(c_range=(1, 6), interp="gaussian", seed=0)(x), x)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(p=-0.1), ValueError, r"^p \(probability of applying\) must be in \[0, 1\]"),
    (dict(p=1.5), ValueError, r"^p \(probability of applying\) must be in \[0, 1\]"),
    (dict(p=float("nan")), ValueError, r"^p \(probability of applying\) must be in \[0, 1\]"),
    (dict(p="0.5"), TypeError, r"^p \(probability of applying\) must be a real number"),
    (dict(p=True), TypeError, r"^p \(probability of applying\) must be a real number"),
    (dict(same_on_batch=1), ValueError, r"^same_on_batch must be True or False"),
    (dict(draw="batch"), ValueError, r"^draw must be one of \('call', 'sample'\)"),
    (dict(c_range=(1.0, 4)), ValueError, r"^c_range must be integers 1 <= c_min <= c_max"),
    (dict(c_range=(True, 4)), ValueError, r"^c_range must be integers 1 <= c_min <= c_max"),
])
def test_bad_augmentation_arguments_raise(kwargs, exc, match):
    args = dict(c_range=(2, 4))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        RandomDiffeo(**args)
