r"""Torch models with per-layer access to their representations f_k(x).

* :class:`ConvNet` — a plain CNN (Tomasini et al. 2022, Sec. 2):  for k = 1 … L,

      [f_k(x)]_{c} = ReLU( b^k_c + Σ_{c'} w^k_{c,c'} ⋆_s [f_{k-1}(x)]_{c'} ),    f_0(x) = x,

  filter size F (3 by default), stride s, H channels per layer, then global average pooling over space and a linear
  readout f(x) = β · GAP(f_L(x)) + b.  1D (inputs (P, n) or (P, C, n)) or 2D (inputs (P, n, n) or (P, C, n, n)).
* :class:`FCNet` — a fully-connected ReLU net of depth L and width H on the flattened input, the "poor architecture"
  of Petrini et al. (2021), which unlearns diffeo stability.
* :class:`VGGNet` — a VGG-style 2D CNN (batch norm, max pooling), the deep nets of the paper's channel-shuffle test.
* :func:`handcrafted_net` — the hand-constructed scale-detection network of :mod:`verify.handcrafted`.

Representations: the post-ReLU activations of every layer are the outputs of the leaf modules ``blocks.{k-1}.act``
and the output is ``readout``; :meth:`ConvNet.layer_names` lists them in depth order, ready for
``numerics.stability.layerwise_stability(model, x, x_diffeo, layers=model.layer_names())`` (forward hooks), and
:meth:`ConvNet.representations` returns the same tensors directly.

Initialisation (seeded with a ``torch.Generator``): He-normal weights w ~ N(0, 2 / fan_in) (keeps the mean squared
activation constant through ReLU layers), zero biases, readout β ~ N(0, 1 / H).
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "ConvNet",
    "FCNet",
    "VGGNet",
    "VGG_CONFIGS",
    "handcrafted_net",
    "shuffle_channels",
    "conv_filters",
    "count_parameters",
    "as_tensor",
    "Tapped",
]


def _generator(seed) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be None, an integer >= 0 or a torch.Generator, got {seed!r}")
    g = torch.Generator()
    g.manual_seed(0 if seed is None else int(seed))
    return g


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def as_tensor(x, *, device=None, dtype=None) -> torch.Tensor:
    """numpy array or tensor -> tensor on ``device`` with ``dtype`` (default float64 for numpy input)."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device if device is not None else x.device, dtype=dtype or x.dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype or torch.float64, device=device)


class Block(nn.Module):
    """One layer: ``act(linear(x))`` where linear is a conv or a dense map; the output of ``act`` is f_k."""

    def __init__(self, linear: nn.Module):
        super().__init__()
        self.linear = linear
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x))


class _Representable(nn.Module):
    blocks: nn.ModuleList
    readout: nn.Linear

    def layer_names(self, *, include_output: bool = True) -> list[str]:
        """Module names whose forward outputs are f_1 … f_L (and the output f, if ``include_output``)."""
        names = [f"blocks.{i}.act" for i in range(len(self.blocks))]
        return names + ["readout"] if include_output else names

    def _prepare(self, x) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def _head(self, h: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def representations(self, x, *, include_output: bool = True) -> list[torch.Tensor]:
        """[f_1(x), …, f_L(x)] (+ the output f(x)), each of shape (P, …), computed in one forward pass."""
        h = self._prepare(x)
        reps = []
        for block in self.blocks:
            h = block(h)
            reps.append(h)
        if include_output:
            reps.append(self._head(h))
        return reps

    def forward(self, x) -> torch.Tensor:
        h = self._prepare(x)
        for block in self.blocks:
            h = block(h)
        return self._head(h)


@torch.no_grad()
def _he_init(layers: Sequence[nn.Module], readout: nn.Linear, width: int, seed) -> None:
    """He-normal weights N(0, 2/fan_in) for the conv / dense ``layers`` (fan_in = C_in × filter size for
    convolutions), zero biases, readout weights N(0, 1/H), zero readout bias; drawn in float64 from one seeded
    generator."""
    g = _generator(seed)
    for layer in layers:
        w = layer.weight
        fan_in = w.shape[1] * math.prod(w.shape[2:])
        w.copy_(torch.randn(w.shape, generator=g, dtype=torch.float64) * math.sqrt(2.0 / fan_in))
        if layer.bias is not None:
            layer.bias.zero_()
    readout.weight.copy_(torch.randn(readout.weight.shape, generator=g, dtype=torch.float64) / math.sqrt(width))
    if readout.bias is not None:
        readout.bias.zero_()


class ConvNet(_Representable):
    """CNN of depth L and width H with filter size F, stride s, ReLU, global average pooling and a linear readout.

    Parameters
    ----------
    dim : 1 or 2 — spatial dimension.
    depth : L >= 1 conv layers;  width : H >= 1 channels per layer;  in_channels : input channels (1).
    filter_size : F (odd: "same" padding (F-1)/2 on each side; even: requires stride == F, no padding).
    stride : s >= 1 at every layer (``strides`` overrides it per layer).
    bias : conv biases (zero-initialised) or none (the paper's ``--bias 0``).
    padding : "zeros" or "circular" (periodic task).
    out_dim : readout size (1: scalar f(x)).
    seed : int or torch.Generator for the initialisation.
    """

    def __init__(
        self,
        *,
        dim: int = 1,
        depth: int = 4,
        width: int = 32,
        in_channels: int = 1,
        filter_size: int = 3,
        stride: int = 1,
        strides: Sequence[int] | None = None,
        bias: bool = False,
        padding: str = "zeros",
        out_dim: int = 1,
        readout_bias: bool = True,
        seed=0,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        if isinstance(dim, bool) or dim not in (1, 2):
            raise ValueError(f"dim must be 1 or 2, got {dim!r}")
        for name, flag in (("bias", bias), ("readout_bias", readout_bias)):
            if not isinstance(flag, (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        depth = _positive_int("depth", depth)
        width = _positive_int("width", width)
        in_channels = _positive_int("in_channels", in_channels)
        filter_size = _positive_int("filter_size", filter_size)
        out_dim = _positive_int("out_dim", out_dim)
        if strides is None:
            strides = [_positive_int("stride", stride)] * depth
        else:
            strides = [_positive_int("strides[i]", s) for s in strides]
            if len(strides) != depth:
                raise ValueError(f"strides must have length depth={depth}, got {len(strides)}")
        if padding not in ("zeros", "circular"):
            raise ValueError(f"padding must be 'zeros' or 'circular', got {padding!r}")
        if filter_size % 2 == 0 and any(s != filter_size for s in strides):
            raise ValueError(f"an even filter_size ({filter_size}) requires stride == filter_size at every layer")
        pad = (filter_size - 1) // 2 if filter_size % 2 else 0
        Conv = nn.Conv1d if dim == 1 else nn.Conv2d
        self.dim, self.depth, self.width = dim, depth, width
        self.in_channels, self.filter_size, self.strides = in_channels, filter_size, list(strides)
        self.has_bias, self.padding = bias, padding
        self.blocks = nn.ModuleList(
            Block(Conv(in_channels if k == 0 else width, width, filter_size, stride=strides[k], padding=pad,
                       bias=bias, padding_mode=padding))
            for k in range(depth)
        )
        self.readout = nn.Linear(width, out_dim, bias=readout_bias)
        self.to(dtype)  # first, so that the float64 draws are not rounded through float32 parameters
        self.reset_parameters(seed)

    def reset_parameters(self, seed=0) -> None:
        """He-normal conv weights N(0, 2/(C_in F^dim)), zero biases, readout N(0, 1/H) (seeded)."""
        _he_init([b.linear for b in self.blocks], self.readout, self.width, seed)

    def _prepare(self, x) -> torch.Tensor:
        p = next(self.parameters())
        x = as_tensor(x, device=p.device, dtype=p.dtype)
        if x.dim() == self.dim + 1:
            x = x.unsqueeze(1)
        if x.dim() != self.dim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape (P, {'n' if self.dim == 1 else 'n, n'}) or (P, {self.in_channels}, …) for a "
                f"{self.dim}D ConvNet, got {tuple(x.shape)}")
        return x

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        return self.readout(h.flatten(2).mean(-1))

    def conv_layers(self) -> list[tuple[str, nn.Module]]:
        """(name, conv module) for every layer, in depth order."""
        return [(f"blocks.{i}.linear", b.linear) for i, b in enumerate(self.blocks)]

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, depth={self.depth}, width={self.width}, filter_size={self.filter_size}, "
                f"strides={self.strides}, bias={self.has_bias}, padding={self.padding!r}")


class FCNet(_Representable):
    """Fully-connected ReLU net on the flattened input: f_k = ReLU(W_k f_{k-1} + b_k), f = β·f_L + b.

    ``input_shape`` is the shape of one sample (e.g. (n,) or (n, n)).
    """

    def __init__(self, input_shape: Sequence[int] | int, *, depth: int = 2, width: int = 256, bias: bool = True,
                 out_dim: int = 1, seed=0, dtype: torch.dtype = torch.float64):
        super().__init__()
        shape = (input_shape,) if isinstance(input_shape, (int, np.integer)) else tuple(input_shape)
        if not shape or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
            raise ValueError(f"input_shape must be a non-empty tuple of positive ints, got {input_shape!r}")
        self.input_shape = tuple(int(s) for s in shape)
        d_in = math.prod(self.input_shape)
        depth = _positive_int("depth", depth)
        width = _positive_int("width", width)
        out_dim = _positive_int("out_dim", out_dim)
        self.depth, self.width, self.has_bias = depth, width, bias
        self.blocks = nn.ModuleList(Block(nn.Linear(d_in if k == 0 else width, width, bias=bias))
                                    for k in range(depth))
        self.readout = nn.Linear(width, out_dim, bias=True)
        self.to(dtype)  # first, so that the float64 draws are not rounded through float32 parameters
        self.reset_parameters(seed)

    def reset_parameters(self, seed=0) -> None:
        """He-normal weights N(0, 2/fan_in), zero biases, readout N(0, 1/H) (seeded)."""
        _he_init([b.linear for b in self.blocks], self.readout, self.width, seed)

    def _prepare(self, x) -> torch.Tensor:
        p = next(self.parameters())
        x = as_tensor(x, device=p.device, dtype=p.dtype)
        k = len(self.input_shape)
        if tuple(x.shape[-k:]) != self.input_shape:
            raise ValueError(f"x must have shape (P, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        return x.reshape(x.shape[0], -1)

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        return self.readout(h)


VGG_CONFIGS: dict[str, tuple] = {
    # conv widths and "M" (2x2 max pooling), Simonyan & Zisserman (2015), as used by Tomasini et al. (2022)
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}


class VGGNet(nn.Module):
    """VGG-style 2D CNN (the deep nets of Tomasini et al. 2022 on the scale-detection task and CIFAR10):
    3×3 convolutions ("same" padding), optional batch norm, ReLU, 2×2 max pooling at the "M" entries of the
    configuration, then global average pooling and a linear readout.

    Parameters
    ----------
    config : a name of :data:`VGG_CONFIGS` or a sequence of conv widths and "M".
    width_mult : every conv width is multiplied by this (rounded, at least 1).
    batch_norm : BatchNorm2d after every conv (the paper's "VGG11bn").
    bias : conv biases (the paper's VGG builder keeps them).
    in_channels, out_dim, seed, dtype : as for :class:`ConvNet`.

    Max pooling uses ``ceil_mode``, so a 1×1 map stays 1×1 (28×28 inputs: 28 → 14 → 7 → 4 → 2 → 1).  Representations:
    the outputs of every ``features.{i}.act`` (after conv [+ BN] + ReLU) and every ``features.{i}`` pooling layer, in
    depth order (:meth:`layer_names`), then ``readout``.  Initialisation: He-normal conv weights, zero biases, BN
    weight 1 and bias 0, readout N(0, 1/H).
    """

    def __init__(self, *, config="vgg11", width_mult: float = 1.0, batch_norm: bool = True, bias: bool = True,
                 in_channels: int = 1, out_dim: int = 1, seed=0, dtype: torch.dtype = torch.float64):
        super().__init__()
        if isinstance(config, str):
            if config not in VGG_CONFIGS:
                raise ValueError(f"config must be one of {sorted(VGG_CONFIGS)} or a sequence, got {config!r}")
            config = VGG_CONFIGS[config]
        config = tuple(config)
        if not config or any(not (c == "M" or (isinstance(c, (int, np.integer)) and not isinstance(c, bool)
                                                and c >= 1)) for c in config) or "M" == config[0]:
            raise ValueError("config must be conv widths (integers >= 1) and 'M', starting with a conv, "
                             f"got {config!r}")
        if isinstance(width_mult, bool) or not (isinstance(width_mult, (int, float)) and math.isfinite(width_mult)
                                                and width_mult > 0):
            raise ValueError(f"width_mult must be a finite number > 0, got {width_mult!r}")
        in_channels = _positive_int("in_channels", in_channels)
        out_dim = _positive_int("out_dim", out_dim)
        layers: list[nn.Module] = []
        c_in = in_channels
        for c in config:
            if c == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            c_out = max(1, int(round(c * width_mult)))
            unit = nn.Sequential()
            unit.add_module("conv", nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias))
            if batch_norm:
                unit.add_module("bn", nn.BatchNorm2d(c_out))
            unit.add_module("act", nn.ReLU())
            layers.append(unit)
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.readout = nn.Linear(c_in, out_dim)
        self.config, self.width_mult, self.batch_norm, self.has_bias = config, float(width_mult), batch_norm, bias
        self.in_channels, self.width = in_channels, c_in
        self.to(dtype)  # first, so that the float64 draws are not rounded through float32 parameters
        self.reset_parameters(seed)

    def reset_parameters(self, seed=0) -> None:
        """He-normal conv weights, zero biases, BN (1, 0), readout N(0, 1/H) (seeded)."""
        convs = [m for m in self.features.modules() if isinstance(m, nn.Conv2d)]
        _he_init(convs, self.readout, self.width, seed)
        with torch.no_grad():
            for m in self.features.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.reset_running_stats()
                    m.weight.fill_(1.0)
                    m.bias.zero_()

    def layer_names(self, *, include_output: bool = True) -> list[str]:
        """Module names whose outputs are the representations f_1 … f_L (post-ReLU and post-pooling), in depth
        order, and ``readout`` if ``include_output``."""
        names = [f"features.{i}.act" if isinstance(m, nn.Sequential) else f"features.{i}"
                 for i, m in enumerate(self.features)]
        return names + ["readout"] if include_output else names

    def conv_layers(self) -> list[tuple[str, nn.Module]]:
        """(name, conv module) for every conv layer, in depth order."""
        return [(f"features.{i}.conv", m.conv) for i, m in enumerate(self.features) if isinstance(m, nn.Sequential)]

    def forward(self, x) -> torch.Tensor:
        p = next(self.parameters())
        x = as_tensor(x, device=p.device, dtype=p.dtype)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (P, n, n) or (P, {self.in_channels}, n, n), got {tuple(x.shape)}")
        return self.readout(self.features(x).flatten(2).mean(-1))

    def extra_repr(self) -> str:
        return f"width_mult={self.width_mult}, batch_norm={self.batch_norm}, bias={self.has_bias}"


def handcrafted_net(xi: int, n: int, *, dim: int = 1, stride: int = 1, layers: int | None = None) -> nn.Module:
    """The hand-constructed scale-detection network (``verify.handcrafted.HandcraftedNet``, helper "scale").

    Raises ImportError with a clear message if that module is not installed in this checkout.
    """
    try:
        from verify.handcrafted import HandcraftedNet
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        raise ImportError("verify.handcrafted.HandcraftedNet is not available in this checkout") from exc
    return HandcraftedNet(xi, n, dim=dim, stride=stride, layers=layers)


class Tapped(nn.Module):
    """Expose the ``.representations(x)`` of any net as named modules ``taps.0 … taps.{m-1}`` (identity maps), so
    that forward hooks (``numerics.stability.layerwise_stability(…, layers=Tapped.layer_names())``) see every layer
    of a network that has no per-layer modules of its own (e.g. ``HandcraftedNet``).  Returns the last
    representation (the output)."""

    def __init__(self, net: nn.Module, n_layers: int):
        super().__init__()
        self.net = net
        self.taps = nn.ModuleList(nn.Identity() for _ in range(_positive_int("n_layers", n_layers)))

    def layer_names(self) -> list[str]:
        return [f"taps.{i}" for i in range(len(self.taps))]

    def forward(self, x):
        reps = self.net.representations(x)
        if len(reps) != len(self.taps):
            raise ValueError(f"net.representations returned {len(reps)} tensors, expected {len(self.taps)}")
        return [tap(r) for tap, r in zip(self.taps, reps)][-1]


@torch.no_grad()
def shuffle_channels(model: nn.Module, *, seed=0, output: bool = False) -> nn.Module:
    """Copy of ``model`` with the input channels of every conv layer permuted: W ← W[:, π_layer] (Tomasini et al.
    2022, Sec. 3, channel-shuffling test; independent uniform permutation π per layer).

    Each filter keeps its spatial structure (so spatial pooling survives) but the learned coupling between channels
    of consecutive layers is destroyed (so channel pooling is removed).  Layers with a single input channel are left
    unchanged.  With ``output=True`` the output channels are permuted too (W ← W[π', π], b ← b[π']).
    """
    g = _generator(seed)
    new = copy.deepcopy(model)
    for module in new.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            w = module.weight
            perm_in = torch.randperm(w.shape[1], generator=g).to(w.device)
            w.copy_(w[:, perm_in])
            if output:
                perm_out = torch.randperm(w.shape[0], generator=g).to(w.device)
                w.copy_(w[perm_out])
                if module.bias is not None:
                    module.bias.copy_(module.bias[perm_out])
    return new


def conv_filters(model: nn.Module) -> dict[str, np.ndarray]:
    """Copies of every conv weight (C_out, C_in, F[, F]) as float64 numpy arrays, keyed by module name."""
    return {name: m.weight.detach().cpu().to(torch.float64).numpy().copy()
            for name, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
