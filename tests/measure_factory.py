"""User-side factories for the tests of ``verify.datasets`` and ``verify.measure`` (``--model
measure_factory:make_net``, ``--data measure_factory:make_dataset``): what a user's own module looks like."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class SmallCNN(nn.Module):
    """conv(3x3) - ReLU - conv(3x3) - ReLU - 2x2 max pool - flatten - linear; float32, seeded init."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 4, side: int = 28, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.act2 = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(width * (side // 2) ** 2, n_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) / max(1.0, p[0].numel() ** 0.5))

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.act2(self.conv2(self.act1(self.conv1(x)))))))


def make_net(in_channels: int = 1, n_classes: int = 10, width: int = 4, side: int = 28, seed: int = 0) -> nn.Module:
    return SmallCNN(in_channels, n_classes, width, side, seed)


def not_a_module():
    return "a string"


class _Items(torch.utils.data.Dataset):
    def __init__(self, n: int, side: int, channels: int, pil: bool, labelled: bool, seed: int):
        rng = np.random.default_rng(seed)
        self.x = rng.integers(0, 256, size=(n, side, side, channels), dtype=np.uint8)
        self.y = np.arange(n) % 3
        self.pil, self.labelled = pil, labelled

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if self.pil:
            from PIL import Image

            a = self.x[i]
            img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
        else:
            img = torch.from_numpy(self.x[i]).permute(2, 0, 1).float() / 255.0
        return (img, int(self.y[i])) if self.labelled else img


def make_dataset(n: int = 30, side: int = 12, channels: int = 1, pil: bool = False, labelled: bool = True,
                 train: bool = True, seed: int = 0):
    """A torch Dataset of random images (PIL images or CHW tensors); ``train=False`` draws other images."""
    return _Items(n, side, channels, pil, labelled, seed if train else seed + 1000)


def make_arrays(n: int = 40, side: int = 10, labelled: bool = True, seed: int = 0):
    """(x, y) numpy arrays, x (n, side, side) float64, y in 0..3 (or x alone)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, side, side))
    return (x, np.arange(n) % 4) if labelled else x


class _Block(nn.Module):
    """A torchvision-style basic block: one ReLU module called twice, in-place add, optional downsample."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 4, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(_Block(width, width, 1), _Block(width, 2 * width, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2 * width, n_classes)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # non-trivial batch-norm statistics, so that eval mode matters
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                    m.running_var.copy_(1 + 0.5 * torch.rand(m.running_var.shape, generator=g))

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def make_resnet(in_channels: int = 1, n_classes: int = 10, width: int = 4, seed: int = 0) -> nn.Module:
    return TinyResNet(in_channels, n_classes, width, seed)
