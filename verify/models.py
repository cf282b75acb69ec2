r"""Torch models with per-layer access to their representations f_k(x).

* :class:`ConvNet` — a plain CNN (Tomasini et al. 2022, Sec. 2):  for k = 1 … L,

      [f_k(x)]_{c} = ReLU( b^k_c + Σ_{c'} w^k_{c,c'} ⋆_s [f_{k-1}(x)]_{c'} ),    f_0(x) = x,

  filter size F (3 by default), stride s, H channels per layer, then global average pooling over space and a linear
  readout f(x) = β · GAP(f_L(x)) + b.  1D (inputs (P, n) or (P, C, n)) or 2D (inputs (P, n, n) or (P, C, n, n)).
* :class:`FCNet` — a fully-connected ReLU net of depth L and width H on the flattened input, the "poor architecture"
  of Petrini et al. (2021), which unlearns diffeo stability.
* :class:`VGGNet` — a VGG-style 2D CNN (batch norm, max pooling), the deep nets of the paper's channel-shuffle test.
* :class:`LeNet5` — LeCun et al. (1998)'s LeNet-5 layout (ReLU, max pooling), one of the 2021 paper's architectures.
* :class:`ResNet` — a small CIFAR-style residual net (He et al. 2016): basic blocks, batch norm, stride-2 stages.
* :class:`ScatteringNet` — a linear classifier on the scattering transform (Bruna & Mallat 2013, ``kymatio``): a
  network stable to diffeomorphisms by construction, the reference point of the architecture comparison.
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
    "LeNet5",
    "ResNet",
    "ScatteringNet",
    "scattering_transform",
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


def _image_size(name: str, value) -> tuple[int, int]:
    """An int side or an (H, W) pair of positive ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        h, w = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair (H, W) of ints, got {value!r}") from None
    return _positive_int(name, h), _positive_int(name, w)


def _image_input(model: nn.Module, x, in_channels: int, size: tuple[int, int] | None) -> torch.Tensor:
    """(P, H, W) or (P, C, H, W) input as a tensor on the model's device and dtype, shape checked."""
    p = next(model.parameters())
    x = as_tensor(x, device=p.device, dtype=p.dtype)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    want = f"(P, {in_channels}, {size[0]}, {size[1]})" if size else f"(P, {in_channels}, H, W)"
    if x.dim() != 4 or x.shape[1] != in_channels or (size is not None and tuple(x.shape[2:]) != size):
        raise ValueError(f"x must have shape {want} (or without the channel axis for one channel), "
                         f"got {tuple(x.shape)}")
    return x


class LeNet5(nn.Module):
    r"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998) with ReLU and max pooling, as in the 2021 paper's code:

    conv 5×5 (6 channels, padding 2) → ReLU → 2×2 max pool → conv 5×5 (16 channels) → ReLU → 2×2 max pool →
    dense 120 → ReLU → dense 84 → ReLU → linear readout.

    A 28×28 input gives 28 → 14 → 10 → 5, i.e. 16·5·5 = 400 inputs to the first dense layer (the original's 32×32
    input without padding gives the same sizes); ``input_size`` (an int or (H, W), each at least 12) sizes that layer.

    Parameters
    ----------
    input_size : image side(s); in_channels : input channels; out_dim : readout size (10 for ten classes);
    seed, dtype : as for :class:`ConvNet`.

    Representations (:meth:`layer_names`): ``conv1.act``, ``pool1``, ``conv2.act``, ``pool2``, ``fc1.act``,
    ``fc2.act`` and ``readout``.  Initialisation: He-normal conv and dense weights, zero biases, readout N(0, 1/84).
    """

    def __init__(self, *, input_size=28, in_channels: int = 1, out_dim: int = 1, seed=0,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        self.input_size = _image_size("input_size", input_size)
        if min(self.input_size) < 12:
            raise ValueError(f"input_size must be at least 12 pixels per side, got {input_size!r}")
        self.in_channels = _positive_int("in_channels", in_channels)
        out_dim = _positive_int("out_dim", out_dim)
        h, w = ((s // 2 - 4) // 2 for s in self.input_size)
        self.conv1 = Block(nn.Conv2d(self.in_channels, 6, 5, padding=2))
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = Block(nn.Conv2d(6, 16, 5))
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = Block(nn.Linear(16 * h * w, 120))
        self.fc2 = Block(nn.Linear(120, 84))
        self.readout = nn.Linear(84, out_dim)
        self.width = 84
        self.to(dtype)  # first, so that the float64 draws are not rounded through float32 parameters
        self.reset_parameters(seed)

    def reset_parameters(self, seed=0) -> None:
        """He-normal weights N(0, 2/fan_in), zero biases, readout N(0, 1/84) (seeded)."""
        _he_init([self.conv1.linear, self.conv2.linear, self.fc1.linear, self.fc2.linear], self.readout,
                 self.width, seed)

    def layer_names(self, *, include_output: bool = True) -> list[str]:
        """Module names of the representations f_1 … f_6 in depth order (and ``readout``)."""
        names = ["conv1.act", "pool1", "conv2.act", "pool2", "fc1.act", "fc2.act"]
        return names + ["readout"] if include_output else names

    def conv_layers(self) -> list[tuple[str, nn.Module]]:
        """(name, conv module) for both conv layers."""
        return [("conv1.linear", self.conv1.linear), ("conv2.linear", self.conv2.linear)]

    def forward(self, x) -> torch.Tensor:
        h = self.pool2(self.conv2(self.pool1(self.conv1(_image_input(self, x, self.in_channels, self.input_size)))))
        return self.readout(self.fc2(self.fc1(h.flatten(1))))


class BasicBlock(nn.Module):
    """Residual basic block (He et al. 2016): ``act(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` with 3×3 convs
    (no bias; the first with ``stride``) and an identity shortcut, or a 1×1 conv + BN when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.act(out + self.shortcut(x))


class ResNet(nn.Module):
    r"""A small residual network for small images, in the layout of He et al. (2016)'s CIFAR ResNets:

    stem conv 3×3 (``widths[0]`` channels) + BN + ReLU, then one stage per entry of ``widths`` of ``blocks``
    :class:`BasicBlock`\ s each (the first block of every stage after the first has stride 2), global average pooling
    and a linear readout.  ``widths=(16, 32, 64), blocks=1`` is a ResNet-8 (6n + 2 layers with n = 1); ``blocks=3``
    is ResNet-20.

    Parameters
    ----------
    widths : channels per stage;  blocks : basic blocks per stage;  in_channels, out_dim, seed, dtype : as for
    :class:`ConvNet`.

    Representations (:meth:`layer_names`): ``stem.act`` and every block's ``stages.{i}.{j}.act`` (after the residual
    sum), then ``readout``.  Initialisation: He-normal conv weights, BN (1, 0), readout N(0, 1/widths[-1]).
    """

    def __init__(self, *, widths: Sequence[int] = (16, 32, 64), blocks: int = 1, in_channels: int = 1,
                 out_dim: int = 1, seed=0, dtype: torch.dtype = torch.float64):
        super().__init__()
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
            raise ValueError(f"widths must be a non-empty sequence of integers >= 1, got {widths!r}")
        self.widths = tuple(_positive_int("widths", w) for w in widths)
        self.blocks = _positive_int("blocks", blocks)
        self.in_channels = _positive_int("in_channels", in_channels)
        out_dim = _positive_int("out_dim", out_dim)
        w0 = self.widths[0]
        self.stem = nn.Sequential()
        self.stem.add_module("conv", nn.Conv2d(self.in_channels, w0, 3, padding=1, bias=False))
        self.stem.add_module("bn", nn.BatchNorm2d(w0))
        self.stem.add_module("act", nn.ReLU())
        stages, c_in = [], w0
        for i, w in enumerate(self.widths):
            units = [BasicBlock(c_in if j == 0 else w, w, stride=2 if (i > 0 and j == 0) else 1)
                     for j in range(self.blocks)]
            stages.append(nn.Sequential(*units))
            c_in = w
        self.stages = nn.ModuleList(stages)
        self.readout = nn.Linear(c_in, out_dim)
        self.width = c_in
        self.to(dtype)  # first, so that the float64 draws are not rounded through float32 parameters
        self.reset_parameters(seed)

    def reset_parameters(self, seed=0) -> None:
        """He-normal conv weights, BN (1, 0) with fresh running statistics, readout N(0, 1/H) (seeded)."""
        _he_init([m for m in self.modules() if isinstance(m, nn.Conv2d)], self.readout, self.width, seed)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.reset_running_stats()
                    m.weight.fill_(1.0)
                    m.bias.zero_()

    def layer_names(self, *, include_output: bool = True) -> list[str]:
        """``stem.act`` and every block output, in depth order (and ``readout``)."""
        names = ["stem.act"] + [f"stages.{i}.{j}.act" for i in range(len(self.stages)) for j in range(self.blocks)]
        return names + ["readout"] if include_output else names

    def conv_layers(self) -> list[tuple[str, nn.Module]]:
        """(name, conv module) for every conv layer (shortcut 1×1 convs included), in module order."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, nn.Conv2d)]

    def forward(self, x) -> torch.Tensor:
        h = self.stem(_image_input(self, x, self.in_channels, None))
        for stage in self.stages:
            h = stage(h)
        return self.readout(h.flatten(2).mean(-1))

    def extra_repr(self) -> str:
        return f"widths={self.widths}, blocks={self.blocks}"


def scattering_transform(input_size, *, J: int = 2, L: int = 8) -> nn.Module:
    """kymatio's 2D scattering transform (a ``torch.nn.Module``; Bruna & Mallat 2013) for images of ``input_size``:
    input (P, C, H, W), output (P, C, K, H/2^J, W/2^J) with K = 1 + J L + L² J (J - 1)/2 coefficients (order 2).

    Imported from kymatio's 2D frontend directly: ``kymatio.torch`` also imports the 3D frontend, which fails with
    scipy >= 1.15 (``scipy.special.sph_harm`` was removed) in kymatio 0.3."""
    H, W = _image_size("input_size", input_size)
    J = _positive_int("J", J)
    L = _positive_int("L", L)
    if H % 2**J or W % 2**J:
        raise ValueError(f"input_size must be divisible by 2^J = {2**J}, got {(H, W)}")
    try:
        from kymatio.scattering2d.frontend.torch_frontend import ScatteringTorch2D
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("ScatteringNet needs kymatio (pip install kymatio)") from exc
    return ScatteringTorch2D(J=J, shape=(H, W), L=L, max_order=2)


class ScatteringNet(nn.Module):
    r"""A linear classifier on the scattering transform: f(x) = β · N(S_J x) + b, with S_J the order-2 scattering
    transform (:func:`scattering_transform`, J scales, L angles; Bruna & Mallat 2013) and N a batch norm without
    affine parameters (per coefficient channel, as in kymatio's examples).  S_J is fixed and Lipschitz-stable to
    small diffeomorphisms (Mallat 2012); only the head ``N`` + readout is trained, which is why it can be trained
    on precomputed features: ``train(net.head, net.features(x), y)``.

    Representations (:meth:`layer_names`): ``scattering`` (P, C, K, H/2^J, W/2^J), ``head.norm`` and
    ``head.readout``.  Initialisation: readout N(0, 1/fan_in), zero bias.
    """

    def __init__(self, *, input_size=28, in_channels: int = 1, J: int = 2, L: int = 8, out_dim: int = 1, seed=0,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        self.input_size = _image_size("input_size", input_size)
        self.in_channels = _positive_int("in_channels", in_channels)
        out_dim = _positive_int("out_dim", out_dim)
        self.J, self.L = _positive_int("J", J), _positive_int("L", L)
        self.scattering = scattering_transform(self.input_size, J=self.J, L=self.L)
        K = self.in_channels * (1 + self.J * self.L + self.L**2 * self.J * (self.J - 1) // 2)
        h, w = (s // 2**self.J for s in self.input_size)
        self.n_coefficients = K
        self.head = nn.Sequential()
        self.head.add_module("norm", nn.BatchNorm2d(K, affine=False))
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("readout", nn.Linear(K * h * w, out_dim))
        self.to(dtype)
        self.reset_parameters(seed)

    def reset_parameters(self, seed=0) -> None:
        """Readout N(0, 1/fan_in), zero bias, fresh batch-norm statistics (seeded)."""
        readout = self.head.readout
        _he_init([], readout, readout.in_features, seed)
        self.head.norm.reset_running_stats()

    def layer_names(self, *, include_output: bool = True) -> list[str]:
        names = ["scattering", "head.norm"]
        return names + ["head.readout"] if include_output else names

    def features(self, x) -> torch.Tensor:
        """N-ready scattering coefficients (P, C·K, H/2^J, W/2^J) of the images x."""
        x = _image_input(self, x, self.in_channels, self.input_size)
        s = self.scattering(x)
        return s.reshape(s.shape[0], -1, *s.shape[-2:])

    def forward(self, x) -> torch.Tensor:
        return self.head(self.features(x))

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, J={self.J}, L={self.L}, coefficients={self.n_coefficients}"


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
