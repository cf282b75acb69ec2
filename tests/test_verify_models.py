"""verify.models: shapes, per-layer access, seeding, channel shuffling, bad inputs."""
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theory.laplacian import filter_spectrum
from verify.models import ConvNet, FCNet, Tapped, conv_filters, count_parameters, shuffle_channels


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_convnet_shapes_and_representations(dim, stride):
    n, L, H = 12, 3, 5
    net = ConvNet(dim=dim, depth=L, width=H, stride=stride, seed=1)
    x = torch.randn((4,) + (n,) * dim, dtype=torch.float64)
    out = net(x)
    assert out.shape == (4, 1)
    reps = net.representations(x)
    assert len(reps) == L + 1
    size = n
    for k in range(L):
        size = (size + 2 - 3) // stride + 1
        assert reps[k].shape == (4, H) + (size,) * dim
        assert torch.all(reps[k] >= 0)  # post-ReLU
    torch.testing.assert_close(reps[-1], out)
    # the named layers are exactly the modules whose outputs are the representations
    captured = {}
    mods = dict(net.named_modules())
    hs = [mods[name].register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))
          for name in net.layer_names()]
    net(x)
    for h in hs:
        h.remove()
    for name, r in zip(net.layer_names(), reps):
        torch.testing.assert_close(captured[name], r)


def test_channel_axis_and_numpy_input():
    net = ConvNet(dim=1, depth=2, width=3, seed=0)
    x = np.random.default_rng(0).normal(size=(5, 10))
    torch.testing.assert_close(net(x), net(torch.as_tensor(x)[:, None, :]))


def test_seeded_initialisation():
    a, b, c = ConvNet(dim=2, depth=2, width=3, seed=7), ConvNet(dim=2, depth=2, width=3, seed=7), \
        ConvNet(dim=2, depth=2, width=3, seed=8)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.blocks[0].linear.weight, c.blocks[0].linear.weight)


def test_he_initialisation_variance():
    net = ConvNet(dim=2, depth=2, width=64, seed=0)
    w = net.blocks[1].linear.weight
    np.testing.assert_allclose(w.var().item(), 2 / (64 * 9), rtol=0.05)  # 36864 draws: s.e. of var ≈ 0.7%


def test_fcnet():
    net = FCNet((6, 6), depth=3, width=10, seed=0)
    x = torch.randn(7, 6, 6, dtype=torch.float64)
    assert net(x).shape == (7, 1)
    reps = net.representations(x)
    assert [r.shape[1] for r in reps] == [10, 10, 10, 1]
    assert count_parameters(net) == 36 * 10 + 10 + 2 * (100 + 10) + 10 + 1
    with pytest.raises(ValueError, match="x must have shape"):
        net(torch.randn(2, 5, 5))


@pytest.mark.parametrize("kwargs,name", [(dict(dim=3), "dim"), (dict(dim=True), "dim"), (dict(depth=0), "depth"),
                                         (dict(width=-1), "width"), (dict(padding="reflect"), "padding"),
                                         (dict(filter_size=2, stride=1), "an even filter_size"),
                                         (dict(strides=[1, 2], depth=3), "strides"), (dict(depth=True), "depth"),
                                         (dict(bias="no"), "bias"), (dict(seed=1.7), "seed"), (dict(seed=-1), "seed")])
def test_convnet_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        ConvNet(**kwargs)


def test_float64_models_draw_float64_weights():
    """The He-normal draws are float64 (not float32 draws cast up): some weight is not a float32 number."""
    from verify.models import FCNet
    for net in (ConvNet(dim=1, depth=2, width=4, seed=0), FCNet((6,), depth=1, width=8, seed=0)):
        w = net.blocks[0].linear.weight
        assert w.dtype == torch.float64 and not torch.equal(w, w.float().double())


def test_fcnet_bad_input_shape_argument():
    from verify.models import FCNet
    for bad in ((2.5,), (0,), (True,), ()):
        with pytest.raises(ValueError, match="^input_shape"):
            FCNet(bad)


def test_convnet_bad_input_shape():
    net = ConvNet(dim=2, depth=1, width=2)
    with pytest.raises(ValueError, match="x must have shape"):
        net(torch.randn(3, 8))


def test_even_filter_strided():
    net = ConvNet(dim=1, depth=3, width=2, filter_size=2, stride=2)
    reps = net.representations(torch.randn(2, 16, dtype=torch.float64))
    assert [r.shape[-1] for r in reps[:-1]] == [8, 4, 2]


@given(st.integers(0, 10_000))
def test_shuffle_preserves_filters_and_spectra(seed):
    net = ConvNet(dim=2, depth=3, width=4, seed=3)
    sh = shuffle_channels(net, seed=seed)
    f0, f1 = conv_filters(net), conv_filters(sh)
    np.testing.assert_array_equal(f0["blocks.0.linear"], f1["blocks.0.linear"])  # single input channel
    for name in f0:
        # the same filters, only their input-channel order changes, by one permutation per layer: W1 = W0[:, π]
        perm = _row_permutation(f0[name][0], f1[name][0])
        np.testing.assert_array_equal(f1[name], f0[name][:, perm])
        # so the Laplacian spectrum is identical
        np.testing.assert_allclose(filter_spectrum(f0[name])[1], filter_spectrum(f1[name])[1], rtol=1e-12)


def _row_permutation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """π with b[i] == a[π[i]] for every i (rows compared exactly; asserts that it exists and is a permutation)."""
    perm = np.array([next(j for j in range(len(a)) if np.array_equal(a[j], row)) for row in b])
    assert sorted(perm.tolist()) == list(range(len(a)))
    return perm


def test_shuffle_with_output_channels_permutes_rows_and_biases():
    net = ConvNet(dim=1, depth=3, width=5, bias=True, seed=3)
    with torch.no_grad():
        for b in net.blocks:
            b.linear.bias.copy_(torch.randn(5, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    sh = shuffle_channels(net, seed=2, output=True)
    moved_out = False
    for b0, b1 in zip(net.blocks, sh.blocks):
        w0, w1 = b0.linear.weight.detach().numpy(), b1.linear.weight.detach().numpy()
        # W1 = W0[π_out][:, π_in]: find π_out from the multiset of each row's filters, then π_in from one row
        keys0 = [sorted(map(tuple, w0[c].reshape(w0.shape[1], -1).tolist())) for c in range(len(w0))]
        p_out = np.array([keys0.index(sorted(map(tuple, w1[c].reshape(w1.shape[1], -1).tolist())))
                          for c in range(len(w1))])
        assert sorted(p_out.tolist()) == list(range(len(w0)))
        p_in = _row_permutation(w0[p_out[0]], w1[0])
        np.testing.assert_array_equal(w1, w0[p_out][:, p_in])
        np.testing.assert_array_equal(b1.linear.bias.detach().numpy(), b0.linear.bias.detach().numpy()[p_out])
        moved_out |= not np.array_equal(p_out, np.arange(len(w0)))
    assert moved_out


def test_shuffle_is_a_no_op_without_channel_structure_and_changes_function_otherwise():
    net = ConvNet(dim=1, depth=3, width=4, seed=0)
    x = torch.randn(6, 10, dtype=torch.float64)
    with torch.no_grad():  # filters identical across input channels: no channel pooling to destroy
        for b in net.blocks[1:]:
            b.linear.weight.copy_(b.linear.weight[:, :1].expand_as(b.linear.weight))
    torch.testing.assert_close(shuffle_channels(net, seed=5)(x), net(x))
    net2 = ConvNet(dim=1, depth=3, width=4, seed=0)
    assert not torch.allclose(shuffle_channels(net2, seed=5)(x), net2(x))


def test_tapped_exposes_representations():
    net = ConvNet(dim=1, depth=2, width=3, seed=0)
    tapped = Tapped(net, 3)
    assert tapped.layer_names() == ["taps.0", "taps.1", "taps.2"]
    x = torch.randn(2, 9, dtype=torch.float64)
    torch.testing.assert_close(tapped(x), net(x))
    with pytest.raises(ValueError, match="expected 2"):
        Tapped(net, 2)(x)


# ---------------------------------------------------------------------------------------------------------------------
# VGG


@pytest.mark.parametrize("n", [8, 28])
def test_vggnet_shapes_layers_and_pooling(n):
    """VGG11 (×1/16): 8 conv units and 5 ceil-mode poolings (28 -> 14 -> 7 -> 4 -> 2 -> 1); the named layers are
    exactly the post-ReLU / post-pooling outputs, in depth order, which a forward hook can read."""
    from verify.models import VGGNet
    net = VGGNet(config="vgg11", width_mult=1 / 16, seed=0).eval()
    names = net.layer_names(include_output=False)
    assert len(names) == 13 and sum(nm.endswith(".act") for nm in names) == 8
    assert len(net.conv_layers()) == 8
    x = torch.randn(3, n, n, dtype=torch.float64)
    captured = []
    mods = dict(net.named_modules())
    hs = [mods[nm].register_forward_hook(lambda m, i, o: captured.append(o)) for nm in names]
    out = net(x)
    for h in hs:
        h.remove()
    assert out.shape == (3, 1)
    sizes = [c.shape[-1] for c in captured]
    expect, s = [], n
    for c in net.config:
        s = -(-s // 2) if c == "M" else s
        expect.append(s)
    assert sizes == expect and sizes[-1] == 1
    assert all(torch.all(c >= 0) for c in captured)          # ReLU outputs and max pools of them
    torch.testing.assert_close(net(x), VGGNet(config="vgg11", width_mult=1 / 16, seed=0).eval()(x))


def test_vggnet_initialisation_and_shuffle():
    from verify.models import VGGNet
    net = VGGNet(config=(32, "M", 64), width_mult=1.0, seed=3)
    w = net.features[2].conv.weight
    np.testing.assert_allclose(w.var().item(), 2 / (32 * 9), rtol=0.05)   # 18432 draws: s.e. of var ~1%
    assert torch.all(net.features[2].conv.bias == 0) and torch.all(net.features[0].bn.weight == 1)
    sh = shuffle_channels(net, seed=1)
    w0, w1 = net.features[2].conv.weight, sh.features[2].conv.weight
    for c in range(w0.shape[0]):   # every output channel keeps its multiset of input filters
        a = sorted(map(tuple, w0[c].reshape(w0.shape[1], -1).tolist()))
        b = sorted(map(tuple, w1[c].reshape(w1.shape[1], -1).tolist()))
        assert a == b
    assert not torch.equal(w0, w1)


@pytest.mark.parametrize("kw,name", [(dict(config="vgg99"), "config"), (dict(config=("M", 8)), "config"),
                                     (dict(config=(8, 0)), "config"), (dict(width_mult=0), "width_mult"),
                                     (dict(width_mult=float("nan")), "width_mult"),
                                     (dict(width_mult=True), "width_mult"),
                                     (dict(in_channels=0), "in_channels")])
def test_vggnet_bad_arguments(kw, name):
    from verify.models import VGGNet
    with pytest.raises(ValueError, match=name):
        VGGNet(**kw)
    with pytest.raises(ValueError, match="x must have shape"):
        VGGNet(config=(4,))(torch.zeros(2, 2, 5, 5, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------------------------------
# LeNet-5, ResNet, ScatteringNet (the architecture comparison on images)


def _hooked(net, names, x):
    captured = {}
    mods = dict(net.named_modules())
    hs = [mods[nm].register_forward_hook(lambda m, i, o, nm=nm: captured.__setitem__(nm, o)) for nm in names]
    out = net(x)
    for h in hs:
        h.remove()
    return out, captured


@pytest.mark.parametrize("C,n", [(1, 28), (3, 32)])
def test_lenet5_shapes_layers_and_parameter_count(C, n):
    from verify.models import LeNet5
    net = LeNet5(input_size=n, in_channels=C, out_dim=10, seed=0)
    x = torch.randn(3, C, n, n, dtype=torch.float64)
    out, cap = _hooked(net, net.layer_names(include_output=False), x)
    assert out.shape == (3, 10)
    s = (n // 2 - 4) // 2   # conv 5x5 "same" -> pool 2 -> conv 5x5 valid -> pool 2
    assert [tuple(cap[nm].shape[1:]) for nm in net.layer_names(include_output=False)] == [
        (6, n, n), (6, n // 2, n // 2), (16, n // 2 - 4, n // 2 - 4), (16, s, s), (120,), (84,)]
    # LeCun et al. (1998) sizes: 6 and 16 filters of 5x5, dense 120 and 84, with biases
    expected = (6 * C * 25 + 6) + (16 * 6 * 25 + 16) + (16 * s * s * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert count_parameters(net) == expected
    assert n != 28 or expected == 61706      # the classic 28x28 MNIST LeNet-5
    assert all(torch.all(cap[nm] >= 0) for nm in cap)


def test_lenet5_seeded_init_and_bad_arguments():
    from verify.models import LeNet5
    a, b, c = LeNet5(seed=3), LeNet5(seed=3), LeNet5(seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.fc1.linear.weight, c.fc1.linear.weight)
    w = a.fc1.linear.weight   # 48000 He-normal draws N(0, 2/400): s.e. of the variance ~0.6%
    np.testing.assert_allclose(w.var().item(), 2 / 400, rtol=0.05)
    assert torch.all(a.fc1.linear.bias == 0)
    with pytest.raises(ValueError, match="^input_size"):
        LeNet5(input_size=8)
    with pytest.raises(ValueError, match="^input_size"):
        LeNet5(input_size=(28, 28, 1))
    with pytest.raises(ValueError, match="^x must have shape"):
        LeNet5()(torch.zeros(2, 1, 32, 32, dtype=torch.float64))


def _resnet_parameters(C, widths, blocks, K):
    """Parameter count of the ResNet layout from its definition (conv weights, BN weight + bias, readout)."""
    n = 9 * C * widths[0] + 2 * widths[0]
    c_in = widths[0]
    for i, w in enumerate(widths):
        for j in range(blocks):
            cin = c_in if j == 0 else w
            n += 9 * cin * w + 2 * w + 9 * w * w + 2 * w
            if (i > 0 and j == 0) or cin != w:
                n += cin * w + 2 * w
        c_in = w
    return n + widths[-1] * K + K


@pytest.mark.parametrize("widths,blocks", [((4, 8, 16), 1), ((4, 8), 2)])
def test_resnet_shapes_layers_and_parameter_count(widths, blocks):
    from verify.models import ResNet
    net = ResNet(widths=widths, blocks=blocks, out_dim=10, seed=0).eval()
    names = net.layer_names(include_output=False)
    assert len(names) == 1 + len(widths) * blocks
    x = torch.randn(2, 28, 28, dtype=torch.float64)
    out, cap = _hooked(net, names, x)
    assert out.shape == (2, 10)
    side = [28]
    for _ in widths[1:]:
        side.append(-(-side[-1] // 2))   # stride 2, padding 1
    expect = [(widths[0], 28, 28)] + [(w, side[i], side[i]) for i, w in enumerate(widths) for _ in range(blocks)]
    assert [tuple(cap[nm].shape[1:]) for nm in names] == expect
    assert count_parameters(net) == _resnet_parameters(1, widths, blocks, 10)


def test_resnet_block_is_residual_and_init_is_seeded():
    from verify.models import ResNet
    net = ResNet(widths=(4, 4), blocks=1, seed=1).eval()
    block = net.stages[0][0]
    x = torch.relu(torch.randn(3, 4, 6, 6, dtype=torch.float64))
    with torch.no_grad():
        block.bn2.weight.zero_()   # residual branch off: the block is act(x + 0) = x for x >= 0
    torch.testing.assert_close(block(x), x)
    a, b = ResNet(seed=5), ResNet(seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.stem.conv.weight, ResNet(seed=6).stem.conv.weight)
    w = ResNet(widths=(64, 64), seed=0).stages[0][0].conv2.weight   # 36864 draws N(0, 2/(64*9))
    np.testing.assert_allclose(w.var().item(), 2 / (64 * 9), rtol=0.05)
    for kw, name in ((dict(widths=()), "widths"), (dict(widths=(4, 0)), "widths"), (dict(blocks=0), "blocks"),
                     (dict(widths="abc"), "widths")):
        with pytest.raises(ValueError, match=f"^{name}"):
            ResNet(**kw)


def test_scattering_net_coefficients_and_head():
    from verify.models import ScatteringNet
    net = ScatteringNet(out_dim=10, seed=0).eval()
    assert net.n_coefficients == 1 + 2 * 8 + 8 * 8 * 2 * 1 // 2 == 81   # 1 + J L + L^2 J (J - 1) / 2, J=2, L=8
    assert count_parameters(net) == 81 * 7 * 7 * 10 + 10                # only the readout is trained
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(net(x), net.head(net.features(x)))
    # a constant image: the low-pass (order 0) coefficients are the constant (unit-mass Gaussian), and every
    # wavelet coefficient vanishes (zero-mean wavelets)
    s = net.features(torch.full((2, 1, 28, 28), 0.7, dtype=torch.float64))
    np.testing.assert_allclose(s[:, 0].numpy(), 0.7, rtol=1e-3)
    assert s[:, 1:].abs().max().item() < 1e-6
    three = ScatteringNet(in_channels=3, input_size=32, L=4, out_dim=2)
    assert three.n_coefficients == 3 * (1 + 8 + 16) and three(torch.zeros(1, 3, 32, 32)).shape == (1, 2)
    with pytest.raises(ValueError, match="^input_size"):
        ScatteringNet(input_size=30)
    with pytest.raises(ValueError, match="^x must have shape"):
        net(torch.zeros(1, 1, 32, 32, dtype=torch.float64))


def test_out_dim_sizes_every_readout():
    from verify.models import LeNet5, ResNet, VGGNet
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    for net in (FCNet((1, 28, 28), out_dim=7), ConvNet(dim=2, depth=2, width=3, out_dim=7), LeNet5(out_dim=7),
                ResNet(widths=(4,), out_dim=7), VGGNet(config=(4, "M"), out_dim=7)):
        assert net(x).shape == (2, 7)
