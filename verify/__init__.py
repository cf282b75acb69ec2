"""Torch models, training and the theory-vs-measurement comparison (`python -m verify.compare`)."""
