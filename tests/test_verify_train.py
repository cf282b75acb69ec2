"""verify.train: the loop learns, is reproducible, checkpoints filters, implements the α-trick, stops cleanly."""
import numpy as np
import pytest
import torch

from verify.models import ConvNet
from verify.train import (AlphaPredictor, TrainConfig, TrainingInterrupted, classification_error, default_dtype,
                          train)


def _toy(n=8, P=64, seed=0):
    """Translation-invariant separable 1D task: one active pixel of value ±1 at a random place; y = its sign."""
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, n, P)
    y = rng.choice([-1.0, 1.0], P)
    x = np.zeros((P, n))
    x[np.arange(P), pos] = y
    return x, y


def _cfg(**kw):
    base = dict(epochs=30, batch_size=16, lr=0.1, progress=False, seed=0, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_training_fits_a_separable_task():
    threads = torch.get_num_threads()  # restored afterwards: the thread count is process-wide
    torch.set_num_threads(1)
    try:
        _fits_a_separable_task()
    finally:
        torch.set_num_threads(threads)


def _fits_a_separable_task():
    x, y = _toy()
    net = ConvNet(dim=1, depth=2, width=8, padding="zeros", seed=0)
    err0 = classification_error(net, x, y)
    res = train(net, x, y, _cfg(), x_test=x, y_test=y)
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]
    assert res.final["train_err"] <= 0.05 < err0 + 0.05
    assert res.final["test_err"] == classification_error(net, x, y)
    assert res.dtype == "float64" and res.device == "cpu" and not res.interrupted
    assert res.epochs_done == 30 and len(res.history) == 30
    # cosine schedule: lr decreases to ~0
    lrs = [h["lr"] for h in res.history]
    assert lrs[0] == pytest.approx(0.1) and all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 0.01


def test_reproducible_with_seed_and_mse():
    x, y = _toy()
    outs = []
    for seed in (3, 3, 4):
        net = ConvNet(dim=1, depth=2, width=4, seed=0)
        train(net, x, y, _cfg(epochs=3, seed=seed, loss="mse"))
        outs.append(net(x).detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert not torch.equal(outs[0], outs[2])  # different mini-batch order


def test_checkpoints():
    x, y = _toy()
    net = ConvNet(dim=2, depth=2, width=3, seed=0)
    x2 = np.zeros((len(x), 4, 4))
    x2[:, 0, :] = x[:, :4]
    res = train(net, x2, y, _cfg(epochs=4, checkpoint_every=2))
    assert [c["epoch"] for c in res.checkpoints] == [0, 2, 4]
    assert set(res.checkpoints[0]["filters"]) == {"blocks.0.linear", "blocks.1.linear"}
    assert res.checkpoints[0]["filters"]["blocks.1.linear"].shape == (3, 3, 3, 3)
    assert not np.array_equal(res.checkpoints[0]["filters"]["blocks.1.linear"],
                              res.checkpoints[-1]["filters"]["blocks.1.linear"])


def test_alpha_trick_zero_at_init_and_lazy_for_large_alpha():
    x, y = _toy()
    moves = {}
    for alpha in (1.0, 100.0):
        net = ConvNet(dim=1, depth=2, width=8, seed=0)
        w0 = [p.detach().clone() for p in net.parameters()]
        pred = AlphaPredictor(net, alpha)
        torch.testing.assert_close(pred(x), torch.zeros(len(x), 1, dtype=torch.float64))
        res = train(net, x, y, _cfg(epochs=5, alpha=alpha, weight_decay=0.0, momentum=0.0, schedule="constant",
                                    lr=0.05))
        assert isinstance(res.predictor, AlphaPredictor)
        moves[alpha] = sum(float((p.detach() - q).norm() ** 2) for p, q in zip(net.parameters(), w0)) ** 0.5
    # the weights move by O(1/alpha): 100x larger alpha, ~100x smaller displacement (loose factor for nonlinearity)
    assert moves[100.0] < moves[1.0] / 20


def _stopping_net(after_calls: int):
    """A ConvNet whose training forward raises KeyboardInterrupt (as Ctrl-C would) after ``after_calls`` batches."""

    class Stop(ConvNet):
        calls = 0

        def forward(self, x):
            if self.training:
                Stop.calls += 1
                if Stop.calls > after_calls:
                    raise KeyboardInterrupt
            return super().forward(x)

    return Stop(dim=1, depth=1, width=2, seed=0)


def test_keyboard_interrupt_propagates_after_saving_the_checkpoint():
    """Default on_interrupt="raise": Ctrl-C reaches the caller (verify.compare's run loop), as a KeyboardInterrupt
    carrying the partial result, whose last checkpoint holds the filters of the epochs done."""
    x, y = _toy()
    net = _stopping_net(8)  # 4 batches per epoch: interrupted during epoch 3
    with pytest.raises(KeyboardInterrupt) as info:
        train(net, x, y, _cfg(epochs=10, checkpoint_every=5), x_test=x, y_test=y)
    assert isinstance(info.value, TrainingInterrupted)
    res = info.value.result
    assert res.interrupted and res.epochs_done == 2 and len(res.history) == 2
    assert [c["epoch"] for c in res.checkpoints] == [0, 2]
    # the saved filters are the net's weights after epoch 2 (the interrupted epoch 3 took no step)
    for name, w in res.checkpoints[-1]["filters"].items():
        np.testing.assert_array_equal(w, dict(net.named_modules())[name].weight.detach().cpu().numpy())
    assert not net.training  # left in eval mode


def test_keyboard_interrupt_returns_with_on_interrupt_return():
    x, y = _toy()
    res = train(_stopping_net(8), x, y, _cfg(epochs=10, checkpoint_every=5), on_interrupt="return")
    assert res.interrupted and res.epochs_done == 2 and len(res.history) == 2
    assert [c["epoch"] for c in res.checkpoints] == [0, 2]


def test_on_interrupt_is_checked():
    x, y = _toy()
    with pytest.raises(ValueError, match="^on_interrupt must be one of"):
        train(ConvNet(dim=1, depth=1, width=2, seed=0), x, y, _cfg(epochs=1), on_interrupt="ignore")
    with pytest.raises(TypeError, match="^on_interrupt must be a str"):
        train(ConvNet(dim=1, depth=1, width=2, seed=0), x, y, _cfg(epochs=1), on_interrupt=True)


@pytest.mark.parametrize("kw", [dict(loss="l1"), dict(epochs=0), dict(lr=-1.0), dict(momentum=1.0),
                                dict(alpha=0.0), dict(schedule="step"), dict(checkpoint_every=0),
                                dict(dtype="float16"), dict(batch_size=True), dict(seed=-1), dict(seed=1.5),
                                dict(seed="x"), dict(device="blah"), dict(checkpoint_every=True), dict(lr="a")])
def test_bad_config(kw):
    name = next(iter(kw))
    with pytest.raises(ValueError, match=f"^{name} must"):
        _cfg(**kw)


def test_classification_error_counts_nan_as_wrong_and_checks_labels():
    class Const(torch.nn.Module):
        def __init__(self, v):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
            self.v = v

        def forward(self, x):
            return torch.full((len(x),), self.v, dtype=torch.float64) + 0 * self.p

    x, y = np.zeros((4, 3)), np.array([1.0, -1.0, 1.0, 1.0])
    assert classification_error(Const(1.0), x, y) == 0.25
    assert classification_error(Const(0.0), x, y) == 1.0          # F = 0 is an error
    assert classification_error(Const(float("nan")), x, y) == 1.0  # so is a NaN output
    for kw, msg in ((dict(y=y * 2), "labels"), (dict(y=y[:3]), "same non-zero length"),
                    (dict(x=x[:0], y=y[:0]), "same non-zero length"), (dict(batch_size=0), "batch_size")):
        args = dict(x=x, y=y) | kw
        bs = args.pop("batch_size", 4096)
        with pytest.raises(ValueError, match=msg):
            classification_error(Const(1.0), args["x"], args["y"], batch_size=bs)


def test_alpha_predictor_keeps_the_initial_copy_in_eval_mode():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    pred = AlphaPredictor(net, 2.0)
    pred.train()
    assert net.training and not pred.init.training
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    a = pred.init(x[:4])
    b = pred.init(torch.cat([x[:4], 10 * x[4:]]))[:4]
    assert torch.allclose(a, b)   # f(w0, .) does not depend on the rest of the batch


def test_bad_data():
    net = ConvNet(dim=1, depth=1, width=2)
    x, y = _toy()
    with pytest.raises(ValueError, match="same non-zero length"):
        train(net, x, y[:-1], _cfg(epochs=1))
    with pytest.raises(ValueError, match="labels"):
        train(net, x, y * 2, _cfg(epochs=1))
    with pytest.raises(ValueError, match="together"):
        train(net, x, y, _cfg(epochs=1), x_test=x)
    with pytest.raises(ValueError, match="x_test and y_test must have the same"):
        train(net, x, y, _cfg(epochs=1), x_test=x, y_test=y[:-1])
    with pytest.raises(ValueError, match="y_test must hold labels"):
        train(net, x, y, _cfg(epochs=1), x_test=x, y_test=0.5 * y)
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        train(net, x, y, _cfg(epochs=1))


def test_default_dtype():
    assert default_dtype("cpu") == torch.float64
    assert default_dtype("cuda") == torch.float32


# ---------------------------------------------------------------------------------------------------------------------
# cross-entropy, integer labels, Adam, stop_loss


def _blobs(K=3, P=60, d=6, seed=0):
    """K well-separated Gaussian blobs in R^d (class means 4 e_k): linearly separable, integer labels 0..K-1."""
    rng = np.random.default_rng(seed)
    y = np.arange(P) % K
    x = rng.normal(size=(P, d)) * 0.3
    x[np.arange(P), y] += 4.0
    return x, y


class _Fixed(torch.nn.Module):
    """Returns given outputs (P, K) whatever the input (for exact error counts)."""

    def __init__(self, F):
        super().__init__()
        self.F = torch.as_tensor(F, dtype=torch.float64)
        self.p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x):
        return self.F[: len(x)] + 0 * self.p


def test_multiclass_classification_error_is_the_argmax_error():
    F = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [0.0, 5.0, 1.0], [np.nan, 9.0, 0.0]])
    x = np.zeros((4, 2))
    # argmax 0, 2, 1 and a non-finite row: with labels 0, 2, 0, 1 the errors are rows 2 and 3
    assert classification_error(_Fixed(F), x, np.array([0, 2, 0, 1])) == 0.5
    assert classification_error(_Fixed(F), x, [0.0, 2.0, 1.0, 1.0]) == 0.25      # integer-valued floats accepted
    assert classification_error(_Fixed(F), x, np.array([0, 2, 1, 1]), batch_size=3) == 0.25
    with pytest.raises(ValueError, match="^y holds the label 3"):
        classification_error(_Fixed(F), x, np.array([0, 3, 0, 1]))
    with pytest.raises(ValueError, match="^y must hold integer class labels"):
        classification_error(_Fixed(F), x, np.array([0, 0.5, 0, 1]))
    with pytest.raises(ValueError, match="^y must hold integer class labels"):
        classification_error(_Fixed(F), x, np.array([0, -1, 0, 1]))


def test_cross_entropy_training_fits_a_separable_multiclass_task():
    from verify.models import FCNet
    x, y = _blobs()
    for opt, lr in (("sgd", 0.05), ("adam", 0.01)):
        net = FCNet((6,), depth=1, width=16, out_dim=3, seed=0)
        err0 = classification_error(net, x, y)
        res = train(net, x, y, _cfg(loss="cross_entropy", optimizer=opt, lr=lr, epochs=20), x_test=x, y_test=y)
        assert res.final["train_err"] == 0.0 and res.final["test_err"] == 0.0 < err0
        assert res.history[-1]["loss"] < 0.2 * res.history[0]["loss"]
        # the reported training error is the argmax error of the labels seen in the epoch
        pred = net(torch.as_tensor(x)).argmax(1).numpy()
        assert np.mean(pred != y) == classification_error(net, x, y)


def test_adam_is_reproducible_and_differs_from_sgd():
    from verify.models import FCNet
    x, y = _blobs()
    outs = []
    for opt, seed in (("adam", 1), ("adam", 1), ("sgd", 1)):
        net = FCNet((6,), depth=1, width=8, out_dim=3, seed=0)
        train(net, x, y, _cfg(loss="cross_entropy", optimizer=opt, lr=0.01, epochs=2, seed=seed))
        outs.append(net(torch.as_tensor(x)).detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert not torch.allclose(outs[0], outs[2])


def test_cross_entropy_needs_class_outputs_and_labels():
    from verify.models import FCNet
    x, y = _blobs()
    with pytest.raises(ValueError, match="K >= 2 outputs"):
        train(FCNet((6,), depth=1, width=4, seed=0), x, y, _cfg(loss="cross_entropy", epochs=1))
    with pytest.raises(ValueError, match="^y holds the label 2"):
        train(FCNet((6,), depth=1, width=4, out_dim=2, seed=0), x, y, _cfg(loss="cross_entropy", epochs=1))
    with pytest.raises(ValueError, match="^y must hold integer class labels"):
        train(FCNet((6,), depth=1, width=4, out_dim=3, seed=0), x, y + 0.5, _cfg(loss="cross_entropy", epochs=1))
    with pytest.raises(ValueError, match="^y_test must hold integer"):
        train(FCNet((6,), depth=1, width=4, out_dim=3, seed=0), x, y, _cfg(loss="cross_entropy", epochs=1),
              x_test=x, y_test=y - 1.0)


def test_stop_loss_ends_training_at_zero_hinge_loss():
    x, y = _toy()
    net = ConvNet(dim=1, depth=2, width=8, seed=0)
    res = train(net, x, y, _cfg(epochs=200, stop_loss=0.0, checkpoint_every=50), x_test=x, y_test=y)
    assert res.stopped_early and res.epochs_done < 200 and res.history[-1]["loss"] == 0.0
    assert all(h["loss"] > 0 for h in res.history[:-1])          # it stopped at the first zero-loss epoch
    assert res.checkpoints[-1]["epoch"] == res.epochs_done and "test_err" in res.history[-1]
    assert res.summary()["stopped_early"] is True


@pytest.mark.parametrize("kw", [dict(optimizer="rmsprop"), dict(stop_loss=-1.0), dict(stop_loss=float("nan")),
                                dict(stop_loss=True), dict(loss="xent")])
def test_bad_config_new_options(kw):
    name = next(iter(kw))
    with pytest.raises(ValueError, match=f"^{name} must"):
        _cfg(**kw)
