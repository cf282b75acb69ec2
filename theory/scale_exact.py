"""Exact finite sums behind `theory.scale_detection` (deterministic; no sampling).

Everything here evaluates *exact* finite sums (over pair geometries, the 3^(2 dim) diffeo
moves, and layer-1 positions) of closed-form terms: lattice kernels (trinomial coefficients),
their prefix sums, and the Gaussian ReLU moments of `theory.scale_gauss`.  The loops are
compiled with numba because the 2D sums have ~10^8 terms; the arithmetic is float64.

Conventions (see `theory.scale_detection` for the model):

* axis kernels: ``kap[a, m, t + R]`` = kappa_m(t), the m-step kernel of the filter (1,1,1)/3 on
  axis a (trinomial coefficient T(m, t) / 3^m; wrapped mod n on the torus); F1 and F2 are its
  first and second prefix sums.  In 1D the second axis is *trivial*: kappa_m = delta for every m,
  half-width 0, so one code path serves dim = 1 and dim = 2.
* <A^m delta_p, A^m delta_q> = prod_a kappa_2m(p_a - q_a);
  sum_{t in [a, b]} kappa_m(t - p) = F1_m(b - p) - F1_m(a - 1 - p);
  sum_{s in [a,b], t in [c,d]} kappa_m(s - t) = F2_m(b-c) - F2_m(a-1-c) - F2_m(b-d-1) + F2_m(a-d-2).
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["axis_tables", "all_tables", "clean_sums", "noise_sums", "strided_sums", "config_atoms", "overlap",
           "quad_atoms", "kprod"]

# ----------------------------------------------------------------------------------------------
# kernel tables


def axis_tables(n: int, periodic: bool, max_order: int, R: int, trivial: bool):
    """kappa_m, F1_m, F2_m for m = 0..max_order on t in [-R, R] for one axis."""
    width = 2 * R + 1
    kap = np.zeros((max_order + 1, width))
    if trivial:
        kap[:, R] = 1.0
    elif periodic:
        ring = np.zeros(n)
        ring[0] = 1.0
        t = np.arange(-R, R + 1)
        for m in range(max_order + 1):
            kap[m] = ring[t % n]
            ring = (np.roll(ring, 1) + ring + np.roll(ring, -1)) / 3.0
    else:
        k = np.zeros(width)
        k[R] = 1.0
        for m in range(max_order + 1):
            kap[m] = k
            k = (np.concatenate(([0.0], k[:-1])) + k + np.concatenate((k[1:], [0.0]))) / 3.0
    F1 = np.cumsum(kap, axis=1)
    F2 = np.cumsum(F1, axis=1)
    return kap, F1, F2


def all_tables(n: int, dim: int, periodic: bool, max_order: int, R: int):
    kap = np.zeros((2, max_order + 1, 2 * R + 1))
    F1 = np.zeros_like(kap)
    F2 = np.zeros_like(kap)
    for a in range(2):
        kap[a], F1[a], F2[a] = axis_tables(n, periodic, max_order, R, trivial=(a >= dim))
    return kap, F1, F2


# ----------------------------------------------------------------------------------------------
# clean network (no noise): diffeo numerators, squared norms, overlaps


@njit(cache=True)
def _tt(kap, a, m, p, q, R):
    return kap[a, m, p - q + R]


@njit(cache=True)
def _f(F, a, m, t, R):
    if t < -R:
        return 0.0
    return F[a, m, t + R]


@njit(cache=True)
def _atom_ip(kap, F1, F2, R, kts, j, ta, ca, tb, cb):
    """<A^j atom_a, A^j atom_b> for the post-threshold atoms (product over the two axes).

    atom type 0: trinomial T~ = 3^kt kappa_kt centred at (c[0], c[1]);
    atom type 1: box [c[0], c[1]] x [c[2], c[3]].
    """
    out = 1.0
    for a in range(2):
        kt = kts[a]
        if ta == 0 and tb == 0:
            v = (9.0 ** kt) * kap[a, 2 * kt + 2 * j, ca[a] - cb[a] + R]
        elif ta == 0 or tb == 0:
            if ta == 0:
                p = ca[a]
                lo = cb[2 * a]
                hi = cb[2 * a + 1]
            else:
                p = cb[a]
                lo = ca[2 * a]
                hi = ca[2 * a + 1]
            m = kt + 2 * j
            v = (3.0 ** kt) * (_f(F1, a, m, hi - p, R) - _f(F1, a, m, lo - 1 - p, R))
        else:
            a0 = ca[2 * a]
            b0 = ca[2 * a + 1]
            c0 = cb[2 * a]
            d0 = cb[2 * a + 1]
            m = 2 * j
            v = (_f(F2, a, m, b0 - c0, R) - _f(F2, a, m, a0 - 1 - c0, R)
                 - _f(F2, a, m, b0 - d0 - 1, R) + _f(F2, a, m, a0 - d0 - 2, R))
        out *= v
        if out == 0.0:
            return 0.0
    return out


@njit(cache=True)
def _pdiff(d, n, periodic):
    """Signed difference reduced to (-n/2, n/2] on the torus; unchanged otherwise."""
    if periodic:
        d = d % n
        if d > n // 2:
            d -= n
    return d


@njit(cache=True)
def config_atoms(p1, p2, kts, n, periodic, sign, types, coords, coefs, start):
    """Write the atoms of g_{k~+1}(x) = sum_i (T~ - 1_S)(. - r_i) + 1_{S(r1) & S(r2)}.

    Returns the number of atoms written (4 or 5)."""
    # pixel 2 unwrapped next to pixel 1 (kernels are periodic on the torus)
    q = np.empty(2, np.int64)
    for a in range(2):
        q[a] = p1[a] + _pdiff(p2[a] - p1[a], n, periodic)
    idx = start
    for pix in range(2):
        c0 = p1[0] if pix == 0 else q[0]
        c1 = p1[1] if pix == 0 else q[1]
        types[idx] = 0
        coords[idx, 0] = c0
        coords[idx, 1] = c1
        coefs[idx] = sign
        idx += 1
        types[idx] = 1
        coords[idx, 0] = c0 - kts[0]
        coords[idx, 1] = c0 + kts[0]
        coords[idx, 2] = c1 - kts[1]
        coords[idx, 3] = c1 + kts[1]
        coefs[idx] = -sign
        idx += 1
    lo0 = max(p1[0], q[0]) - kts[0]
    hi0 = min(p1[0], q[0]) + kts[0]
    lo1 = max(p1[1], q[1]) - kts[1]
    hi1 = min(p1[1], q[1]) + kts[1]
    if lo0 <= hi0 and lo1 <= hi1:
        types[idx] = 1
        coords[idx, 0] = lo0
        coords[idx, 1] = hi0
        coords[idx, 2] = lo1
        coords[idx, 3] = hi1
        coefs[idx] = sign
        idx += 1
    return idx - start


@njit(cache=True)
def overlap(p1, p2, xis, n, periodic):
    """Product over the axes of the overlap of the boxes of side xi around p1 and p2 (the clean output's factor)."""
    out = 1.0
    for a in range(2):
        d = abs(_pdiff(p2[a] - p1[a], n, periodic))
        v = xis[a] - d
        if v <= 0:
            return 0.0
        out *= v
    return out


@njit(cache=True)
def quad_atoms(kap, F1, F2, R, kts, j, types, coords, coefs, na):
    s = 0.0
    for i in range(na):
        for k in range(i, na):
            v = coefs[i] * coefs[k] * _atom_ip(kap, F1, F2, R, kts, j, types[i], coords[i], types[k], coords[k])
            s += v if i == k else 2.0 * v
    return s


@njit(cache=True)
def clean_sums(n, kt, dim, periodic, L, kap, F1, F2, R, mv, mw):
    """Exact averages over the dataset (all unordered pairs) and the moves of both pixels.

    ``mv`` (M, 2) int64: the per-pixel moves (second column 0 in 1D), ``mw`` (M,) float64 their integer weights
    (probability mw / sum(mw); `theory.scale_detection.move_law`); the two pixels move independently.
    Returns (numD, normsq, ov_mean, ov_sq_mean), arrays of length L + 2 indexed by layer
    (0 = input, 1..L = layers, L + 1 = output): numD[k] = E|g_k(tau x) - g_k(x)|^2,
    normsq[k] = E|g_k(x)|^2; ov_* = moments of the clean output overlap."""
    kts = np.zeros(2, np.int64)
    xis = np.ones(2, np.int64)
    for a in range(dim):
        kts[a] = kt
        xis[a] = 2 * kt + 1
    if periodic:
        lo = np.zeros(2, np.int64)
        hi = np.zeros(2, np.int64)
        for a in range(dim):
            hi[a] = n - 1
    else:
        lo = np.zeros(2, np.int64)
        hi = np.zeros(2, np.int64)
        for a in range(dim):
            lo[a] = -(n - 3)
            hi[a] = n - 3
    numD = np.zeros(L + 2)
    normsq = np.zeros(L + 2)
    ovm = 0.0
    ovs = 0.0
    wsum = 0.0
    p1 = np.zeros(2, np.int64)
    p2 = np.zeros(2, np.int64)
    m1p = np.zeros(2, np.int64)
    m2p = np.zeros(2, np.int64)
    types = np.zeros(10, np.int64)
    coords = np.zeros((10, 4), np.int64)
    coefs = np.zeros(10)
    pts = np.zeros((4, 2), np.int64)
    pc = np.zeros(4)
    tot = 0.0
    for i in range(mw.shape[0]):
        tot += mw[i]
    n_moves = tot * tot
    for d0 in range(lo[0], hi[0] + 1):
        for d1 in range(lo[1], hi[1] + 1):
            if d0 == 0 and d1 == 0:
                continue
            if periodic:
                w = 1.0
            else:
                w = (n - 2 - abs(d0)) * 1.0
                if dim == 2:
                    w *= (n - 2 - abs(d1))
            wsum += w
            p2[0] = d0
            p2[1] = d1
            # ---- squared norms of the clean representation
            for k in range(0, kt + 1):
                normsq[k] += w * (2.0 * _prod0(kap, 2 * k, R) + 2.0 * kprod(kap, 2 * k, p1, p2, n, periodic, R))
            na = config_atoms(p1, p2, kts, n, periodic, 1.0, types, coords, coefs, 0)
            for j in range(0, L - kt):
                normsq[kt + 1 + j] += w * quad_atoms(kap, F1, F2, R, kts, j, types, coords, coefs, na)
            ov = overlap(p1, p2, xis, n, periodic)
            normsq[L + 1] += w * ov * ov
            ovm += w * ov
            ovs += w * ov * ov
            # ---- moves
            for ia in range(mv.shape[0]):
                for ib in range(mv.shape[0]):
                    m1p[0] = mv[ia, 0]
                    m1p[1] = mv[ia, 1]
                    m2p[0] = d0 + mv[ib, 0]
                    m2p[1] = d1 + mv[ib, 1]
                    wm = w * (mw[ia] * mw[ib]) / n_moves
                    # pooling layers and input: 4 weighted Dirac points
                    pts[0, 0] = m1p[0]
                    pts[0, 1] = m1p[1]
                    pts[1, 0] = m2p[0]
                    pts[1, 1] = m2p[1]
                    pts[2, 0] = 0
                    pts[2, 1] = 0
                    pts[3, 0] = d0
                    pts[3, 1] = d1
                    pc[0] = 1.0
                    pc[1] = 1.0
                    pc[2] = -1.0
                    pc[3] = -1.0
                    for k in range(0, kt + 1):
                        s = 0.0
                        for i in range(4):
                            for i2 in range(4):
                                s += pc[i] * pc[i2] * kprod(kap, 2 * k, pts[i], pts[i2], n, periodic, R)
                        numD[k] += wm * s
                    # post-threshold layers: atoms of tau x minus atoms of x
                    na1 = config_atoms(m1p, m2p, kts, n, periodic, 1.0, types, coords, coefs, 0)
                    na2 = config_atoms(p1, p2, kts, n, periodic, -1.0, types, coords, coefs, na1)
                    for j in range(0, L - kt):
                        numD[kt + 1 + j] += wm * quad_atoms(kap, F1, F2, R, kts, j, types, coords, coefs,
                                                              na1 + na2)
                    dov = overlap(m1p, m2p, xis, n, periodic) - ov
                    numD[L + 1] += wm * dov * dov
    return numD / wsum, normsq / wsum, ovm / wsum, ovs / wsum


@njit(cache=True)
def _prod0(kap, m, R):
    return kap[0, m, R] * kap[1, m, R]


@njit(cache=True)
def kprod(kap, m, p, q, n, periodic, R):
    """Product over the axes of the order-m trinomial kernel kappa_m between the positions p and q."""
    out = 1.0
    for a in range(2):
        d = p[a] - q[a]
        if periodic:
            d = _pdiff(d, n, periodic)
        out *= kap[a, m, d + R]
    return out


# ----------------------------------------------------------------------------------------------
# rectified noise through the pooling stage (stride 1)


@njit(cache=True)
def _grid_info(n, periodic, trivial):
    """Per-axis layer-1 grid: offsets, window sizes nv1 and window overlap matrix."""
    if trivial:
        G = 1
        off = 0
    elif periodic:
        G = n
        off = 0
    else:
        G = n + 2
        off = -1
    nv = np.zeros(G, np.int64)
    ov = np.zeros((G, G), np.int64)
    for i in range(G):
        c = i + off
        if trivial:
            nv[i] = 1
        elif periodic:
            nv[i] = 3
        else:
            nv[i] = min(c + 1, n - 1) - max(c - 1, 0) + 1
    for i in range(G):
        for k in range(G):
            if trivial:
                ov[i, k] = 1
            elif periodic:
                d = abs(_pdiff(k - i, n, True))
                ov[i, k] = max(0, 3 - d)
            else:
                ci = i + off
                ck = k + off
                lo = max(max(ci - 1, ck - 1), 0)
                hi = min(min(ci + 1, ck + 1), n - 1)
                ov[i, k] = max(0, hi - lo + 1)
    return G, off, nv, ov


@njit(cache=True)
def noise_sums(n, dim, periodic, U1, T2, Aval, positions_lo, positions_hi):
    """Data averages of the layer-1 rectified-noise statistics (stride 1).

    A layer-1-grid unit with c active pixels in its window and noise g is R = phi_c(g); the noisy
    minus clean value is u = R - Aval[c].  U1[c, nv] = E[R], T2[cp, cq, nvp, nvq, nov] = E[R_p R_q]
    (window sizes nv, overlap nov: corr = nov/sqrt(nvp nvq)).  Pooling stage: R = ReLU(a + g),
    a = c/3^dim, Aval[c] = a; threshold layer of the xi = 3 network: R = ReLU(c - 1 + 3^dim g),
    Aval[c] = ReLU(c - 1).
    Returns (epsbar (G0, G1), W (2G0-1, 2G1-1), dC (5, 5), C0 (5, 5), n_pairs)."""
    G0, off0, nv0, ov0 = _grid_info(n, periodic, False)
    if dim == 2:
        G1, off1, nv1, ov1 = _grid_info(n, periodic, False)
    else:
        G1, off1, nv1, ov1 = _grid_info(n, periodic, True)
    epsbar = np.zeros((G0, G1))
    W = np.zeros((2 * G0 - 1, 2 * G1 - 1))
    dC = np.zeros((5, 5))
    C0 = np.zeros((5, 5))
    cnt = np.zeros((G0, G1), np.int64)
    mark = np.zeros((G0, G1), np.int64)
    d1r = 2 if dim == 2 else 0
    # base covariance sums (no signal)
    for i in range(G0):
        for k in range(G1):
            for e0 in range(-2, 3):
                for e1 in range(-d1r, d1r + 1):
                    i2 = i + e0
                    k2 = k + e1
                    if periodic:
                        i2 = i2 % G0
                        k2 = k2 % G1
                    elif i2 < 0 or i2 >= G0 or k2 < 0 or k2 >= G1:
                        continue
                    o = ov0[i, i2] * ov1[k, k2]
                    if o == 0:
                        continue
                    nvp = nv0[i] * nv1[k]
                    nvq = nv0[i2] * nv1[k2]
                    C0[e0 + 2, e1 + 2] += T2[0, 0, nvp, nvq, o] - U1[0, nvp] * U1[0, nvq]
    # enumerate unordered pairs of active positions
    npos0 = positions_hi - positions_lo + 1
    npos1 = npos0 if dim == 2 else 1
    Npos = npos0 * npos1
    S0 = np.zeros(18, np.int64)
    S1 = np.zeros(18, np.int64)
    E0 = np.zeros(2 * 49, np.int64)
    E1 = np.zeros(2 * 49, np.int64)
    eps = np.zeros(18)
    npairs = 0
    dmv = 1 if dim == 2 else 0
    for I in range(Npos):
        for J in range(I + 1, Npos):
            npairs += 1
            r = np.empty((2, 2), np.int64)
            r[0, 0] = positions_lo + I // npos1
            r[0, 1] = (positions_lo + I % npos1) if dim == 2 else 0
            r[1, 0] = positions_lo + J // npos1
            r[1, 1] = (positions_lo + J % npos1) if dim == 2 else 0
            # signal set S: layer-1 grid indices with count > 0
            ns = 0
            for pix in range(2):
                for e0 in range(-1, 2):
                    for e1 in range(-dmv, dmv + 1):
                        i = r[pix, 0] + e0 - off0
                        k = r[pix, 1] + e1 - off1
                        if periodic:
                            i = i % G0
                            k = k % G1
                        if cnt[i, k] == 0:
                            S0[ns] = i
                            S1[ns] = k
                            ns += 1
                        cnt[i, k] += 1
            for s in range(ns):
                i = S0[s]
                k = S1[s]
                nvp = nv0[i] * nv1[k]
                c = cnt[i, k]
                eps[s] = U1[c, nvp] - Aval[c] - U1[0, nvp]
                epsbar[i, k] += eps[s]
            for s in range(ns):
                for t in range(ns):
                    di = S0[t] - S0[s]
                    dk = S1[t] - S1[s]
                    if periodic:
                        di = di % G0
                        dk = dk % G1
                        W[di, dk] += eps[s] * eps[t]
                    else:
                        W[di + G0 - 1, dk + G1 - 1] += eps[s] * eps[t]
            # extended set: within Chebyshev distance 2 of S
            ne = 0
            for s in range(ns):
                for e0 in range(-2, 3):
                    for e1 in range(-d1r, d1r + 1):
                        i = S0[s] + e0
                        k = S1[s] + e1
                        if periodic:
                            i = i % G0
                            k = k % G1
                        elif i < 0 or i >= G0 or k < 0 or k >= G1:
                            continue
                        if mark[i, k] == 0:
                            mark[i, k] = 1
                            E0[ne] = i
                            E1[ne] = k
                            ne += 1
            for s in range(ne):
                i = E0[s]
                k = E1[s]
                cp = cnt[i, k]
                nvp = nv0[i] * nv1[k]
                for e0 in range(-2, 3):
                    for e1 in range(-d1r, d1r + 1):
                        i2 = i + e0
                        k2 = k + e1
                        if periodic:
                            i2 = i2 % G0
                            k2 = k2 % G1
                        elif i2 < 0 or i2 >= G0 or k2 < 0 or k2 >= G1:
                            continue
                        cq = cnt[i2, k2]
                        if cp == 0 and cq == 0:
                            continue
                        o = ov0[i, i2] * ov1[k, k2]
                        if o == 0:
                            continue
                        nvq = nv0[i2] * nv1[k2]
                        cov = T2[cp, cq, nvp, nvq, o] - U1[cp, nvp] * U1[cq, nvq]
                        cov0 = T2[0, 0, nvp, nvq, o] - U1[0, nvp] * U1[0, nvq]
                        dC[e0 + 2, e1 + 2] += cov - cov0
            for s in range(ne):
                mark[E0[s], E1[s]] = 0
            for s in range(ns):
                cnt[S0[s], S1[s]] = 0
    return epsbar / npairs, W / npairs, dC / npairs, C0, npairs


# ----------------------------------------------------------------------------------------------
# strided network (filter = stride = s, block sums), torus


@njit(cache=True)
def strided_sums(n, s, dim, kt, L, mv, mw, preserve):
    """Exact averages for the strided network over all unordered pairs and moves (torus).

    Moves ``mv``, weights ``mw`` as in `clean_sums`; ``preserve``: a move that takes a pixel out of its
    xi-block (xi = s^kt, on any axis) is undone (the label-preserving diffeo of the block task).

    Layer l <= kt: block counts at scale s^l; l = kt + 1: 1[both pixels in the same s^kt block]
    at that block; l > kt + 1: the same indicator carried by the s^(l-1) block; output
    f = 1[same s^kt block].  Returns (numD, normsq, same_frac, npairs): numD[l] = E|g_l(tau x) - g_l(x)|^2,
    normsq[l] = E|g_l(x)|^2, same_frac[l] = fraction of pairs in one scale-l block (l <= kt; 0 above), all (L+2,),
    and the number of unordered pairs."""
    npos1 = n if dim == 2 else 1
    Npos = n * npos1
    numD = np.zeros(L + 2)
    normsq = np.zeros(L + 2)
    same_frac = np.zeros(L + 2)
    scale = np.zeros(L + 2, np.int64)
    scale[0] = 1
    for l in range(1, L + 1):
        if l <= kt:
            scale[l] = s ** l
        elif l == kt + 1:
            scale[l] = s ** kt
        else:
            scale[l] = s ** (l - 1)
    scale[L + 1] = s ** kt
    xi = s ** kt
    npairs = 0
    tot = 0.0
    for i in range(mw.shape[0]):
        tot += mw[i]
    n_moves = tot * tot
    pts = np.zeros((4, 2), np.int64)
    co = np.array([1.0, 1.0, -1.0, -1.0])
    for I in range(Npos):
        r10 = I // npos1
        r11 = I % npos1
        for J in range(I + 1, Npos):
            r20 = J // npos1
            r21 = J % npos1
            npairs += 1
            same_x = (r10 // xi == r20 // xi) and (r11 // xi == r21 // xi)
            for l in range(L + 2):
                b = scale[l]
                sb = (r10 // b == r20 // b) and (r11 // b == r21 // b)
                if l == 0 or l <= kt:
                    normsq[l] += 2.0 + (2.0 if sb else 0.0)
                    same_frac[l] += 1.0 if sb else 0.0
                else:
                    normsq[l] += 1.0 if same_x else 0.0
            for ia in range(mv.shape[0]):
                for ib in range(mv.shape[0]):
                    wab = mw[ia] * mw[ib]
                    q10 = (r10 + mv[ia, 0]) % n
                    q11 = (r11 + mv[ia, 1]) % npos1
                    q20 = (r20 + mv[ib, 0]) % n
                    q21 = (r21 + mv[ib, 1]) % npos1
                    if preserve:
                        if q10 // xi != r10 // xi or q11 // xi != r11 // xi:
                            q10 = r10
                            q11 = r11
                        if q20 // xi != r20 // xi or q21 // xi != r21 // xi:
                            q20 = r20
                            q21 = r21
                    pts[0, 0] = q10
                    pts[0, 1] = q11
                    pts[1, 0] = q20
                    pts[1, 1] = q21
                    pts[2, 0] = r10
                    pts[2, 1] = r11
                    pts[3, 0] = r20
                    pts[3, 1] = r21
                    same_t = (q10 // xi == q20 // xi) and (q11 // xi == q21 // xi)
                    for l in range(L + 2):
                        b = scale[l]
                        if l <= kt:
                            acc = 0.0
                            for i in range(4):
                                for i2 in range(4):
                                    if pts[i, 0] // b == pts[i2, 0] // b and pts[i, 1] // b == pts[i2, 1] // b:
                                        acc += co[i] * co[i2]
                            numD[l] += acc * wab / n_moves
                        elif l <= L:
                            st = 1.0 if same_t else 0.0
                            sx = 1.0 if same_x else 0.0
                            blk = (q10 // b == r10 // b) and (q11 // b == r11 // b)
                            numD[l] += (st + sx - 2.0 * st * sx * (1.0 if blk else 0.0)) * wab / n_moves
                        else:
                            st = 1.0 if same_t else 0.0
                            sx = 1.0 if same_x else 0.0
                            numD[l] += (st - sx) ** 2 * wab / n_moves
    return numD / npairs, normsq / npairs, same_frac / npairs, npairs
