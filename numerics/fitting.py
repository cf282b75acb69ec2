r"""Power-law fits :math:`y = A\,x^{\mp b}` on log-log axes, with the interval rule stated and chosen per call.

The one power-law fit of the package (learning-curve exponents, nearest-neighbour rates, layer-wise laws of CNNs,
test error against :math:`R_f`). The fit is the least-squares line

.. math:: \log y_i = \log A + s \log x_i ,\qquad \text{weights } w_i = 1 \ \text{(no s.e.)}\ \text{or}\
          w_i = (y_i / \mathrm{se}_i)^2 \ \text{(delta method for } \log y\text{)} ,

the exponent is :math:`b = -s` for a decay (``decay=True``: :math:`y = A x^{-b}`, learning curves) and :math:`b = s`
otherwise (:math:`y = A x^{b}`). Its standard error is :math:`\sqrt{(X^\top W X)^{-1}_{11}\,\sigma^2}` with
:math:`\sigma^2 = \chi^2/\mathrm{dof}` (``dof = m - 2``) without standard errors, and
:math:`\max(1, \chi^2/\mathrm{dof})` with them: the error bars are trusted unless the points scatter more than they
say (curvature of a pre-asymptotic curve then widens the interval, as it should). The interval is
:math:`b \pm q\,\mathrm{se}` with :math:`q` the Student-t quantile with ``dof`` degrees of freedom (``interval="t"``,
the default) or the normal quantile (``interval="z"``, for many points with trusted error bars).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from theory.arguments import ArgumentTypeError, ArgumentValueError, check_choice, check_flag, check_real

__all__ = ["INTERVALS", "PowerLawFit", "fit_power_law"]

#: interval rules of :func:`fit_power_law`
INTERVALS = ("t", "z")


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`. ``exponent`` is b in y = A x^{-b} (``decay``) or y = A x^{b}."""

    exponent: float                 # b
    prefactor: float                # A
    se: float                       # standard error of b
    ci: tuple[float, float]         # `level` interval of b under `interval_rule`
    level: float
    n_points: int                   # m: number of (x, y) values fitted (sizes x seeds)
    residual_sd: float              # sqrt(chi2 / dof): s.d. of the (weighted) log-residuals
    chi2: float = math.nan          # weighted sum of squared log-residuals
    dof: int = 0                    # m - 2
    interval_rule: str = "t"        # "t" or "z"
    decay: bool = True
    weighted: bool = False

    def quantile(self, level: float) -> float:
        """The multiplier q of the interval ``exponent +- q se`` at ``level`` under this fit's rule."""
        level = check_real(level, "level", 0.0, False, 1.0, False)
        p = 0.5 + level / 2
        return float(stats.t.ppf(p, self.dof) if self.interval_rule == "t" else stats.norm.ppf(p))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The two-sided interval of the exponent at ``level`` in (0, 1), under this fit's rule."""
        q = self.quantile(level)
        return (self.exponent - q * self.se, self.exponent + q * self.se)

    def contains(self, value: float) -> bool:
        """True when ``value`` lies in the confidence interval ``ci``."""
        return self.ci[0] <= float(value) <= self.ci[1]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d


def _positive_finite(a: np.ndarray, name: str, what: str) -> None:
    if not np.all(np.isfinite(a) & (a > 0)):
        raise ArgumentValueError(name, f"{name} must be finite and > 0 ({what}), got {a}")


def fit_power_law(P, err, se=None, *, level: float = 0.95, interval: str = "t", decay: bool = True) -> PowerLawFit:
    r"""Fit :math:`y = A x^{-b}` (``decay=True``) or :math:`y = A x^{b}` by (weighted) least squares on logs.

    Parameters
    ----------
    P : array_like, shape (n,)
        The abscissa: sizes P, depths k, ...: finite, > 0, at least 2 distinct values.
    err : array_like, shape (n,) or (n, n_seeds)
        Values (errors, sensitivities, ...), finite and > 0; with 2-d ``err`` every seed is one point at its x.
    se : array_like, optional
        Standard errors of ``err`` (same shape, finite, > 0): weights :math:`(y/\mathrm{se})^2`.
    level : float
        Confidence level of ``ci``, in (0, 1).
    interval : {"t", "z"}
        Student-t with m - 2 degrees of freedom, or normal quantiles.
    decay : bool
        Report b of :math:`x^{-b}` (True) or of :math:`x^{b}` (False).

    Returns
    -------
    PowerLawFit
        exponent, prefactor, se, ci, ... (module docstring for the rules). At least 3 values are needed (one
        degree of freedom for the scatter).
    """
    try:
        xa, ya = np.asarray(P, dtype=np.float64), np.asarray(err, dtype=np.float64)
        sa = None if se is None else np.asarray(se, dtype=np.float64)
    except (TypeError, ValueError):
        raise ArgumentTypeError("err", "P, err and se must be numeric arrays (P: sizes, err: values, se: "
                                       "their standard errors)") from None
    level = check_real(level, "level", 0.0, False, 1.0, False)
    check_choice(interval, "interval", INTERVALS)
    decay = check_flag("decay", decay)
    if xa.ndim != 1 or xa.size < 2 or not np.all(np.isfinite(xa) & (xa > 0)) or np.ptp(xa) == 0:
        raise ArgumentValueError("P", f"P must be a 1-d array of finite values > 0 with at least 2 distinct "
                                      f"values, got {xa}")
    if ya.ndim == 1:
        ya = ya[:, None]
        sa = None if sa is None else sa.reshape(-1, 1) if sa.ndim == 1 else sa
    if ya.ndim != 2 or ya.shape[0] != xa.size:
        raise ArgumentValueError("err", f"err must have shape ({xa.size},) or ({xa.size}, n_seeds), got "
                                        f"{np.shape(err)}")
    _positive_finite(ya, "err", "a log-log fit")
    if sa is not None:
        if sa.shape != ya.shape:
            raise ArgumentValueError("se", f"se must have the shape of err {np.shape(err)}, got {np.shape(se)}")
        _positive_finite(sa, "se", "standard errors")
    m = ya.size
    if m < 3:
        raise ArgumentValueError("err", f"err must hold at least 3 values (sizes x seeds) for an interval, "
                                        f"got shape {np.shape(err)}")
    lx = np.repeat(np.log(xa), ya.shape[1])
    ly = np.log(ya).ravel()
    w = np.ones(m) if sa is None else ((ya / sa) ** 2).ravel()
    X = np.stack([np.ones(m), lx], axis=1)
    XtW = X.T * w
    cov_unit = np.linalg.inv(XtW @ X)
    coef = cov_unit @ (XtW @ ly)
    res = ly - X @ coef
    dof = m - 2
    chi2 = float(np.sum(w * res**2))
    scale = chi2 / dof if sa is None else max(1.0, chi2 / dof)
    b_se = math.sqrt(cov_unit[1, 1] * scale)
    b = -float(coef[1]) if decay else float(coef[1])
    fit = PowerLawFit(exponent=b, prefactor=float(math.exp(coef[0])), se=float(b_se), ci=(math.nan, math.nan),
                      level=level, n_points=m, residual_sd=math.sqrt(chi2 / dof), chi2=chi2, dof=dof,
                      interval_rule=interval, decay=decay, weighted=sa is not None)
    q = fit.quantile(level)
    return PowerLawFit(**{**asdict(fit), "ci": (b - q * b_se, b + q * b_se)})
