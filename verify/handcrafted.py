"""The hand-constructed scale-detection network as a torch module.

Same network as the numba forward pass of `numerics.scale_detection` and the exact theory of
`theory.scale_detection` (see its docstring for the construction and the proof that the
output equals prod_a (xi - |Delta_a|)_+, i.e. ReLU(xi - d) in 1D, or 1[same xi-block] strided):

  stride 1:  [conv 3^dim constant 3^-dim, zero bias, full (or circular) padding, ReLU] x k~
             -> [1x1 conv, weight 3^(dim k~), bias -1, ReLU]                 (threshold layer)
             -> [constant pooling conv, ReLU] x (L - k~ - 1)
             -> global average pooling -> linear (weight N_L, bias 2 xi^dim - 2*3^(dim k~)) -> ReLU
  stride s:  block sums (filter = stride = s, value 1) x k~ -> [1x1, bias -1, ReLU]
             -> block sums -> GAP -> linear (weight N_L, bias 0) -> ReLU
"""
from __future__ import annotations

import torch
from torch import nn

from theory.scale_detection import check_params

__all__ = ["HandcraftedNet"]


class HandcraftedNet(nn.Module):
    """HandcraftedNet(xi, n, *, dim=1, stride=1, layers=None, periodic=False).

    Input (B, n) / (B, 1, n) in 1D, (B, n, n) / (B, 1, n, n) in 2D; `forward` returns f (B,),
    `representations(x)` the list [g_1, ..., g_L, f] (one tensor per layer, then the output),
    `predict(x)` the label sign in {-1, +1} (+1 iff f > 0)."""

    def __init__(self, xi: int, n: int, *, dim: int = 1, stride: int = 1, layers: int | None = None,
                 periodic: bool = False, dtype: torch.dtype = torch.float64):
        super().__init__()
        spec = check_params(xi, n, dim=dim, stride=stride, layers=layers, periodic=periodic)
        self.spec = spec
        Conv = nn.Conv1d if spec.dim == 1 else nn.Conv2d
        layers_ = []
        size = spec.n
        for k in range(1, spec.layers + 1):
            if k == spec.kt + 1:
                conv = Conv(1, 1, 1, bias=True, dtype=dtype)
                w = 3.0 ** (spec.dim * spec.kt) if spec.stride == 1 else 1.0
                nn.init.constant_(conv.weight, w)
                nn.init.constant_(conv.bias, -1.0)
            elif spec.stride > 1:
                conv = Conv(1, 1, spec.stride, stride=spec.stride, bias=False, dtype=dtype)
                nn.init.constant_(conv.weight, 1.0)
                size //= spec.stride
            elif spec.periodic:
                conv = Conv(1, 1, 3, padding=1, padding_mode="circular", bias=False, dtype=dtype)
                nn.init.constant_(conv.weight, 3.0 ** (-spec.dim))
            else:
                conv = Conv(1, 1, 3, padding=2, bias=False, dtype=dtype)
                nn.init.constant_(conv.weight, 3.0 ** (-spec.dim))
                size += 2
            layers_.append(conv)
        self.convs = nn.ModuleList(layers_)
        self.readout = nn.Linear(1, 1, dtype=dtype)
        n_last = size ** spec.dim
        nn.init.constant_(self.readout.weight, float(n_last))
        const = 2.0 * spec.xi ** spec.dim - 2.0 * 3.0 ** (spec.dim * spec.kt) if spec.stride == 1 else 0.0
        nn.init.constant_(self.readout.bias, const)
        for p in self.parameters():
            p.requires_grad_(False)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.spec.dim + 1:
            x = x.unsqueeze(1)
        n, dim = self.spec.n, self.spec.dim
        if x.dim() != dim + 2 or x.shape[1] != 1 or tuple(x.shape[2:]) != (n,) * dim:
            raise ValueError(f"x must have shape (B{', n' * dim}) or (B, 1{', n' * dim}) with n = {n}, "
                             f"got {tuple(x.shape)}")
        return x.to(self.readout.weight.dtype)

    def representations(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self._prep(x)
        reps = []
        for conv in self.convs:
            h = torch.relu(conv(h))
            reps.append(h)
        gap = h.flatten(2).mean(-1)                       # (B, 1)
        reps.append(torch.relu(self.readout(gap)).squeeze(-1))
        return reps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.representations(x)[-1]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.forward(x) > 0, 1, -1)
