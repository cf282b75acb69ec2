"""Exact and asymptotic formulas (sympy only; no sampling, no imports from `numerics` or `verify`).

Submodules: :mod:`theory.diffeo` (maximum-entropy diffeomorphisms: displacement, temperature windows),
:mod:`theory.dimension` (curse of dimensionality, nearest-neighbour distances), :mod:`theory.laplacian` (3x3 grid
Laplacian basis of filters), :mod:`theory.scale_detection` (exact layer-wise D_k, G_k, R_k of the hand-constructed
network; with :mod:`theory.scale_exact`, :mod:`theory.scale_gauss`, :mod:`theory.rectified_sums`),
:mod:`theory.spherical` (kernels, exponents and learning curves of the spherical model), :mod:`theory.arguments`
(the argument checks and errors of the whole package). Submodules and the names below load on first use.
"""
from theory.exports import lazy_package

__getattr__, __dir__, __all__ = lazy_package(__name__, [
    "arguments", "diffeo", "dimension", "exports", "laplacian", "rectified_sums", "scale_detection", "scale_exact",
    "scale_gauss", "spherical",
], {
    "arguments": ["ArgumentError", "ArgumentValueError", "ArgumentTypeError"],
    "scale_detection": ["exact_layers", "asymptotic_laws", "noise_sigma"],
    "laplacian": ["grid_eigenbasis", "filter_spectrum"],
    "spherical": ["ntk", "exponent_table"],
})
