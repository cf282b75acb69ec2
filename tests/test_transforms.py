"""verify.transforms.RandomDiffeo: seeded, in the window, the documented Beta laws, differentiable, validated."""
import numpy as np
import pytest
import torch
from scipy import stats

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
        (dict(c_range=(1, 4)), r"^c_range "),
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
