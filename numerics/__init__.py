"""Data, perturbations, simulators and estimators (numpy + numba; may import `theory`).

Submodules: :mod:`numerics.diffeo` (sampling and applying diffeomorphisms), :mod:`numerics.stability` (D, G, R
estimators with uncertainties, layer by layer), :mod:`numerics.perturbations` (the authors' temperature sweep),
:mod:`numerics.scale_detection` (the scale-detection task and its simulator), :mod:`numerics.sphere`,
:mod:`numerics.atoms`, :mod:`numerics.rotations` (the spherical model), :mod:`numerics.nearest_neighbour` (curse of
dimensionality), :mod:`numerics.fitting` (power-law fits), :mod:`numerics.seeds`, :mod:`numerics.testing`
(Monte-Carlo test helpers), :mod:`numerics.torch_optional` (torch type tests without importing torch). Submodules and the names below load on first use.
"""
from theory.exports import lazy_package

__getattr__, __dir__, __all__ = lazy_package(__name__, [
    "atoms", "diffeo", "fitting", "nearest_neighbour", "perturbations", "rotations", "scale_detection", "seeds",
    "sphere", "stability", "testing", "torch_optional",
], {
    "diffeo": ["SineDiffeo", "deform", "remap", "sample_diffeos", "sample_fields", "temperature_range",
               "typical_displacement"],
    "stability": ["Estimate", "StabilityResult", "relative_stability", "layerwise_stability", "rotation_stability",
                  "matched_noise"],
    "perturbations": ["SweepPoint", "temperature_sweep"],
    "fitting": ["PowerLawFit", "fit_power_law", "finite_size_ftests"],
    "atoms": ["min_l1_interpolant", "count_atoms"],
    "sphere": ["sample_sphere"],
    "seeds": ["generator"],
    "testing": ["assert_mc_close"],
})
