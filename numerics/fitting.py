"""Power-law fits ``err ~ A P^{-beta}`` with confidence intervals (learning-curve exponents)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

__all__ = ["PowerLawFit", "fit_power_law"]


@dataclass(frozen=True)
class PowerLawFit:
    exponent: float                 # beta in err ~ A P^{-beta}
    prefactor: float                # A
    se: float                       # standard error of beta (OLS on logs)
    ci: tuple[float, float]         # `level` confidence interval of beta (Student t, n - 2 dof)
    level: float
    n_points: int
    residual_sd: float              # s.d. of log-residuals

    def contains(self, value: float) -> bool:
        """True when ``value`` lies in the confidence interval."""
        return self.ci[0] <= float(value) <= self.ci[1]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d


def fit_power_law(P, err, *, level: float = 0.95) -> PowerLawFit:
    r"""Ordinary least squares of ``log err = log A - beta log P`` over all points.

    ``P`` has shape (n,), ``err`` shape (n,) or (n, n_seeds) (each seed one point, same P).  The interval is
    ``beta +- t_{(1+level)/2, m-2} se`` with ``se^2 = s^2 / sum (log P - mean)^2``; systematic curvature of the
    learning curve (pre-asymptotic sizes) inflates ``s`` and therefore the interval, as it should.
    """
    try:
        P, err = np.asarray(P, dtype=np.float64), np.asarray(err, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("P and err must be numeric arrays (P: sizes, err: errors)") from None
    if P.ndim != 1 or P.size < 2 or not np.all(np.isfinite(P) & (P > 0)) or np.ptp(P) == 0:
        raise ValueError(f"P must be a 1-d array of finite sizes > 0 with at least 2 distinct values, got {P}")
    if err.ndim == 1:
        err = err[:, None]
    if err.ndim != 2 or err.shape[0] != P.size:
        raise ValueError(f"err must have shape ({P.size},) or ({P.size}, n_seeds), got {err.shape}")
    if not np.all(np.isfinite(err)) or np.any(err <= 0):
        raise ValueError("err must be finite and > 0")
    if not (0 < level < 1):
        raise ValueError(f"level must be in (0, 1), got {level}")
    lx = np.repeat(np.log(P), err.shape[1])
    ly = np.log(err).ravel()
    m = lx.size
    if m < 3:
        raise ValueError(f"err must hold at least 3 values (sizes x seeds) for an interval, got shape {err.shape}")
    xm = lx.mean()
    sxx = np.sum((lx - xm) ** 2)
    slope = np.sum((lx - xm) * (ly - ly.mean())) / sxx
    icpt = ly.mean() - slope * xm
    res = ly - (icpt + slope * lx)
    s = math.sqrt(np.sum(res**2) / (m - 2))
    se = s / math.sqrt(sxx)
    q = stats.t.ppf(0.5 + level / 2, m - 2)
    beta = -slope
    return PowerLawFit(exponent=float(beta), prefactor=float(math.exp(icpt)), se=float(se),
                       ci=(float(beta - q * se), float(beta + q * se)), level=level, n_points=m,
                       residual_sd=float(s))
