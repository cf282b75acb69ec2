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
from scipy.optimize import minimize_scalar

from theory.arguments import ArgumentTypeError, ArgumentValueError, check_choice, check_flag, check_real

__all__ = ["INTERVALS", "PowerLawFit", "fit_power_law", "finite_size_ftests"]

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


def _profile_correction(y, x, z, beta):
    """Least squares of ``y = a - beta x + log(1 - b z)``: ``a`` in closed form, ``b < 1/max z`` by a grid and a
    bounded scalar search, and with ``beta=None`` also ``beta`` (linear for each b). Returns (RSS, b, beta)."""
    X = np.stack([np.ones_like(x), -x], 1)

    def fit(b):
        r = y - np.log1p(-b * z)
        if beta is None:
            coef = np.linalg.lstsq(X, r, rcond=None)[0]
            return float(np.sum((r - X @ coef) ** 2)), float(coef[1])
        r = r + beta * x
        return float(np.sum((r - r.mean()) ** 2)), float(beta)

    hi = (1 - 1e-9) / z.max()
    # b -> -inf is the free power law with the exponent shifted by 1/2 (1 - b z ~ |b| P^-1/2): a log-spaced grid on
    # the negative side reaches it, a linear one resolves the approach to the pole at 1/max z
    grid = np.unique(np.concatenate([-hi * np.logspace(-3, 6, 300), np.linspace(-hi * 1e-3, hi * (1 - 1e-6), 301)]))
    i = int(np.argmin([fit(b)[0] for b in grid]))
    res = minimize_scalar(lambda b: fit(b)[0], bounds=(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]),
                          method="bounded", options=dict(xatol=1e-10))
    b = float(res.x) if res.fun <= fit(grid[i])[0] else float(grid[i])
    rss, beta_hat = fit(b)
    return rss, b, beta_hat


def finite_size_ftests(P, err, beta: float) -> dict:
    r"""Is ``err`` the power law :math:`A P^{-\beta}` with the predicted exponent, or that law with a finite-size
    correction? Two nested F-tests on the logs of all points (one per seed and size, n in all):

    * pure law :math:`\log \epsilon = a - \beta \log P` against the free power law (exponent fitted):

      .. math:: F = \frac{RSS_0 - RSS_1}{RSS_1 / (n - 2)} \sim F(1, n - 2);

    * the law with a :math:`P^{-1/2}` correction (the :math:`1/k_c` finite-size term),
      :math:`\epsilon = A P^{-\beta} (1 - b P^{-1/2})` (A, b fitted), against the same with a free exponent:

      .. math:: F = \frac{RSS_c - RSS_3}{RSS_3 / (n - 3)} \sim F(1, n - 3).

    A small p rejects the restricted model (the predicted exponent).

    Parameters
    ----------
    P, err : array_like
        Sizes and errors, the same shape, finite and > 0; at least 5 points on at least 3 sizes.
    beta : float
        The predicted exponent.

    Returns
    -------
    dict
        ``n``; ``free_exponent`` (the least-squares exponent of the pure law); ``pure`` and ``corrected``, each
        with ``F``, ``p`` and ``df``; ``corrected`` also has ``b`` (at the predicted exponent), ``exponent`` and
        ``b_free`` (the fit of the corrected law with a free exponent; b -> -inf is the free power law).

    References
    ----------
    The F-test for nested least-squares models: Seber & Lee, *Linear Regression Analysis*, 2nd ed., sec. 4.3 (the
    corrected model is linear in log A and the exponent for each b; b is profiled out).
    """
    check_real(beta, "beta")
    P, err = np.asarray(P, dtype=float).ravel(), np.asarray(err, dtype=float).ravel()
    if P.shape != err.shape or P.size < 5 or len(np.unique(P)) < 3:
        raise ArgumentValueError("P", f"P, err: need the same shape, >= 5 points and >= 3 distinct sizes, got "
                                      f"shapes {P.shape} and {err.shape}, {len(np.unique(P))} sizes")
    _positive_finite(P, "P", "sizes")
    _positive_finite(err, "err", "errors")
    n, y, x, z = P.size, np.log(err), np.log(P), P ** -0.5
    X = np.stack([np.ones_like(x), -x], 1)
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    rss1 = float(np.sum((y - X @ coef) ** 2))
    r0 = y + beta * x
    rss0 = float(np.sum((r0 - r0.mean()) ** 2))
    rssc, b, _ = _profile_correction(y, x, z, beta)
    rss3, b3, beta3 = _profile_correction(y, x, z, None)
    rss3 = min(rss3, rssc, rss1)  # the 3-parameter model contains both others (guards the search)
    F1 = (rss0 - rss1) / (rss1 / (n - 2))
    F2 = (rssc - rss3) / (rss3 / (n - 3))
    return dict(n=n, free_exponent=float(coef[1]),
                pure=dict(F=float(F1), p=float(stats.f.sf(F1, 1, n - 2)), df=[1, n - 2]),
                corrected=dict(F=float(F2), p=float(stats.f.sf(F2, 1, n - 3)), df=[1, n - 3], b=b,
                               exponent=beta3, b_free=b3))
