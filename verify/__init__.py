"""Torch models, data sets, training, measurement and the theory-vs-measurement comparison.

Command lines: ``python -m verify.compare`` (every claim: prediction, measurement, verdict), ``python -m
verify.measure`` (D, G, R of any network on any image data), ``python -m verify.spherical`` (the spherical model's
sweep). Submodules: :mod:`verify.models`, :mod:`verify.datasets`, :mod:`verify.train`, :mod:`verify.transforms`
(``RandomDiffeo``, the diffeomorphism augmentation), :mod:`verify.measure`, :mod:`verify.specs` (``module:callable``
specs), :mod:`verify.handcrafted`, :mod:`verify.two_layer` (the spherical model's network),
:mod:`verify.spherical`, :mod:`verify.figures`, :mod:`verify.outputs`,
:mod:`verify.experiments`, :mod:`verify.compare`, :mod:`verify.jobs`
(sweeps as resumable local / SLURM jobs). Submodules and the names below load on first use (importing
``verify`` does not import torch).
"""
from theory.exports import lazy_package

__getattr__, __dir__, __all__ = lazy_package(__name__, [
    "compare", "datasets", "experiments", "figures", "handcrafted", "jobs", "measure", "models", "outputs", "specs",
    "spherical", "train", "transforms", "two_layer",
], {
    "transforms": ["RandomDiffeo", "DiffeoParams"],
    "datasets": ["ImageDataset", "load_dataset"],
    "models": ["ConvNet", "FCNet", "VGGNet", "LeNet5", "ResNet", "ScatteringNet"],
    "handcrafted": ["HandcraftedNet"],
    "train": ["TrainConfig", "TrainResult"],
    "specs": ["SpecError", "load_model", "load_checkpoint"],
})
