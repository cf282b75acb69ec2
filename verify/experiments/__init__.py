"""Registry of the verification experiments run by ``python -m verify.compare``.

Each experiment is a module with ``NAME`` and ``run(*, quick, out_dir, seed, device, size=None) -> record`` where
``record = {"name", "rows", "data", "figures"}`` (contract: :func:`verify.compare.validate_record`);
``size="tiny"`` is the test-suite size.
Modules needed from other parts of the toolkit are imported inside ``run`` (an import error is a failed experiment).
"""
from __future__ import annotations

from verify.experiments.common import settle_thread_pools

settle_thread_pools()  # before verify.compare sets torch's thread count (see its docstring)

from verify.experiments import (architectures, channel_shuffle, cnn_layers, fc_regimes,  # noqa: E402
                                fc_vs_cnn, handcrafted, lowpass, spherical)

EXPERIMENTS = {
    m.NAME: m.run for m in (cnn_layers, lowpass, channel_shuffle, fc_vs_cnn, handcrafted, spherical, architectures,
                            fc_regimes)
}

__all__ = ["EXPERIMENTS"]
