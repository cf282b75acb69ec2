"""theory.laplacian: exact eigenbasis of the 3×3 grid Laplacian vs an independent numpy computation."""
import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from theory.laplacian import (
    check_eigenbasis,
    eigenbasis_array,
    eigenspace_projectors,
    filter_spectrum,
    grid_eigenbasis,
    grid_eigenvalues,
    grid_laplacian,
    path_eigenbasis,
    path_filter_spectrum,
    path_laplacian,
)


def _numpy_path_laplacian(n):
    """Independent construction: degree matrix minus the adjacency of the path 0 - 1 - ... - (n-1) (numpy only)."""
    A = np.diag(np.ones(n - 1), 1) + np.diag(np.ones(n - 1), -1)
    return np.diag(A.sum(1)) - A


def _numpy_grid_laplacian(n):
    """Independent construction: L = L_P ⊗ I + I ⊗ L_P from the path-graph adjacency (numpy only)."""
    LP = _numpy_path_laplacian(n)
    return np.kron(LP, np.eye(n)) + np.kron(np.eye(n), LP)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_path_laplacian_matches_numpy_and_its_eigenbasis(n):
    L = path_laplacian(n)
    np.testing.assert_array_equal(np.array(L.tolist(), dtype=float), _numpy_path_laplacian(n))
    assert all(e.is_Integer for e in L)  # exact
    # exact eigenpairs of path_eigenbasis (sympy) and the spectrum of numpy's eigh
    for mu, u in path_eigenbasis(n):
        assert (L * u - mu * u).applyfunc(sp.simplify) == sp.zeros(n, 1)
    np.testing.assert_allclose(sorted(float(m) for m, _ in path_eigenbasis(n)),
                               np.linalg.eigvalsh(_numpy_path_laplacian(n)), atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_sympy_laplacian_matches_kronecker_construction(n):
    L = np.array(grid_laplacian(n).tolist(), dtype=float)
    np.testing.assert_array_equal(L, _numpy_grid_laplacian(n))


def test_eigenvalues_3x3_match_eigh():
    lam_eigh = np.linalg.eigh(_numpy_grid_laplacian(3))[0]
    lam, _ = eigenbasis_array(3)
    np.testing.assert_allclose(lam, lam_eigh, atol=1e-12)
    # the spectrum announced in the paper / talk, with multiplicities
    assert [(int(l), m) for l, m in grid_eigenvalues(3)] == [(0, 1), (1, 2), (2, 1), (3, 2), (4, 2), (6, 1)]


@pytest.mark.parametrize("n", [3, 4])
def test_eigenspace_projectors_match_eigh(n):
    """Basis-independent comparison: the projector on each eigenspace equals the one built from eigh's vectors."""
    lam_eigh, vec_eigh = np.linalg.eigh(_numpy_grid_laplacian(n))
    for lam, P in eigenspace_projectors(n):
        sel = np.isclose(lam_eigh, float(lam), atol=1e-9)
        assert sel.any()
        P_eigh = vec_eigh[:, sel] @ vec_eigh[:, sel].T
        np.testing.assert_allclose(np.array(P.evalf(17).tolist(), dtype=float), P_eigh, atol=1e-12)


@pytest.mark.parametrize("n", [3, 4])
def test_orthonormal_and_exact_eigenvectors(n):
    assert check_eigenbasis(n)
    _, psi = eigenbasis_array(n)
    V = psi.reshape(n * n, n * n)
    np.testing.assert_allclose(V @ V.T, np.eye(n * n), atol=1e-13)
    L = _numpy_grid_laplacian(n)
    lam, _ = eigenbasis_array(n)
    np.testing.assert_allclose(L @ V.T, V.T * lam, atol=1e-12)


def test_3x3_modes_are_tensor_products_of_path_vectors():
    u = [np.array([1, 1, 1]) / np.sqrt(3), np.array([1, 0, -1]) / np.sqrt(2), np.array([1, -2, 1]) / np.sqrt(6)]
    mu = [0, 1, 3]
    path = path_eigenbasis(3)
    for (m, v), m_ref, u_ref in zip(path, mu, u):
        assert sp.simplify(m - m_ref) == 0
        np.testing.assert_allclose(np.array(v.evalf(17), dtype=float).ravel(), u_ref, atol=1e-15)
    for mode in grid_eigenbasis(3):
        a, b = mode.index
        assert sp.simplify(mode.eigenvalue - (mu[a] + mu[b])) == 0
        np.testing.assert_allclose(np.array(mode.vector.evalf(17).tolist(), dtype=float), np.outer(u[a], u[b]),
                                   atol=1e-15)
    const = grid_eigenbasis(3)[0]
    assert const.eigenvalue == 0 and const.vector == sp.ones(3, 3) / 3


@given(st.floats(-5, 5, allow_nan=False).filter(lambda v: abs(v) > 1e-3), st.integers(1, 6))
def test_constant_filter_lies_in_lambda_zero(value, n_filters):
    lam, c = filter_spectrum(np.full((n_filters, 3, 3), value))
    assert lam[0] == 0
    np.testing.assert_allclose(c[0], 9 * value**2, rtol=1e-12)
    np.testing.assert_allclose(c[1:], 0, atol=1e-12 * value**2)


@given(arrays(np.float64, (4, 2, 3, 3), elements=st.floats(-3, 3, allow_nan=False)))
def test_parseval_and_grouping(w):
    lam, c = filter_spectrum(w)
    np.testing.assert_allclose(c.sum(), np.mean(np.sum(w.reshape(-1, 9) ** 2, 1)), rtol=1e-10, atol=1e-12)
    lam_all, c_all = filter_spectrum(w, group=False)
    assert len(c_all) == 9 and len(c) == 6
    for l, v in zip(lam, c):
        np.testing.assert_allclose(v, c_all[np.isclose(lam_all, l)].sum(), rtol=1e-12, atol=1e-14)
    # brute force: mean over filters of the squared projection on each eigh eigenvector, summed per eigenspace
    lam_eigh, vec = np.linalg.eigh(_numpy_grid_laplacian(3))
    proj = (w.reshape(-1, 9) @ vec) ** 2
    for l, v in zip(lam, c):
        np.testing.assert_allclose(v, proj[:, np.isclose(lam_eigh, l)].sum(1).mean(), rtol=1e-9, atol=1e-12)


def test_torch_tensor_accepted():
    torch = pytest.importorskip("torch")
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    lam, c = filter_spectrum(w)
    np.testing.assert_allclose(c, filter_spectrum(w.detach().numpy())[1])


@pytest.mark.parametrize("bad", [np.ones((3, 3, 2)), np.ones(9), np.ones((0, 3, 3)), np.full((1, 3, 3), np.nan),
                                 np.ones((1, 1, 1))])
def test_bad_filters_raise(bad):
    with pytest.raises(ValueError, match="filters|n must"):
        filter_spectrum(bad)


def test_complex_filters_and_bad_group_raise():
    w = np.ones((2, 3, 3))
    for bad in (w + 1j, w.astype(np.complex64)):
        with pytest.raises(ValueError, match="filters must be real"):
            filter_spectrum(bad)
    with pytest.raises(ValueError, match="filters must be real"):
        path_filter_spectrum(np.ones((2, 3)) * 1j)
    for group in (1, "no", None):
        with pytest.raises(ValueError, match="group must be True or False"):
            filter_spectrum(w, group=group)
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="filters must be real"):
        filter_spectrum(torch.ones(2, 3, 3, dtype=torch.complex64))


@pytest.mark.parametrize("n", [0, 1, -3, 2.5, True])
def test_bad_n_raises(n):
    with pytest.raises(ValueError, match="n must"):
        grid_laplacian(n)
    with pytest.raises(ValueError, match="n must"):
        eigenbasis_array(n)
    with pytest.raises(ValueError, match="n must"):
        path_laplacian(n)


def test_path_filter_spectrum_1d():
    from theory.laplacian import path_filter_spectrum
    mu, c = path_filter_spectrum(np.full((4, 3), 2.0))
    np.testing.assert_allclose(mu, [0, 1, 3], atol=1e-12)
    np.testing.assert_allclose(c, [12.0, 0, 0], atol=1e-12)
    w = np.random.default_rng(0).normal(size=(7, 5, 3))
    mu, c = path_filter_spectrum(w)
    np.testing.assert_allclose(c.sum(), np.mean(np.sum(w**2, -1)), rtol=1e-12)
    # independent: eigh of the path Laplacian
    A = np.diag([1.0, 2.0, 1.0]) - np.diag([1.0, 1.0], 1) - np.diag([1.0, 1.0], -1)
    lam, V = np.linalg.eigh(A)
    np.testing.assert_allclose(mu, lam, atol=1e-12)
    np.testing.assert_allclose(c, np.mean((w.reshape(-1, 3) @ V) ** 2, 0), rtol=1e-10)
    with pytest.raises(ValueError):
        path_filter_spectrum(np.full((2, 3), np.inf))
