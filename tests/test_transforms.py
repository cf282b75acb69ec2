"""verify.transforms.RandomDiffeo: seeded, in the window, differentiable, validated."""
import numpy as np
import pytest
import torch

from numerics.diffeo import temperature_range
from verify.transforms import RandomDiffeo


def test_fixed_parameters_and_seed():
    x = torch.randn(3, 2, 16, 16, dtype=torch.float64, requires_grad=True)
    a = RandomDiffeo(T=0.01, c=3, seed=1)(x)
    b = RandomDiffeo(T=0.01, c=3, seed=1)(x)
    assert torch.equal(a, b) and not torch.equal(a, x)
    a.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_sampled_parameters_stay_in_the_window():
    t = RandomDiffeo(c_range=(2, 6), seed=0)
    draws = [t.draw_parameters(32) for _ in range(300)]
    cs = np.array([c for _, c in draws])
    assert set(cs) <= {2.0, 3.0, 4.0, 5.0, 6.0} and len(set(cs)) >= 4
    for T, c in draws:
        lo, hi = temperature_range(32, c, method="paper")
        assert lo <= T <= hi


@pytest.mark.parametrize(
    "kwargs",
    [dict(T=0.01), dict(c=3), dict(T=0.01, c=3, c_range=(2, 4)), dict(c_range=(1, 4)), dict(c_range=(5, 4)),
     dict(c_range=(2, 4), beta_c=(0.0, 1.0))],
)
def test_bad_configuration_raises(kwargs):
    with pytest.raises(ValueError):
        RandomDiffeo(**kwargs)
