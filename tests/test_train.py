"""train: fit learns, early stopping stops and restores the best weights, bad arguments raise,
evaluate/accuracy agree with a manual count, loaders shuffle by seed only."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tlhelpers as tlh
from tlhelpers.train import evaluate, make_loader, train_one_epoch


def _linear(num_classes: int = 2, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))


@pytest.fixture
def zeros_and_ones(mnist):
    """An easy task: MNIST 0 vs 1, 20 training and 50 test digits per class."""
    train, test = mnist
    return (tlh.few_shot(tlh.select_classes(train, [0, 1]), 20, seed=0),
            tlh.few_shot(tlh.select_classes(test, [0, 1]), 50, seed=0))


def test_fit_improves_accuracy_on_an_easy_task(zeros_and_ones):
    train, test = zeros_and_ones
    model = _linear()
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([0.0, 1.0]))  # starts by answering "1" for everything
    before = tlh.accuracy(model, test)
    assert before == pytest.approx(0.5)
    history = tlh.fit(model, train, val_data=test, epochs=5, lr=1e-2, batch_size=8, progress=False)
    after = tlh.accuracy(model, test)
    assert after >= 0.95, f"accuracy {before:.2f} -> {after:.2f}"
    assert isinstance(history, tlh.History) and history.epochs == 5
    assert len(history.val_acc) == len(history.train_acc) == 5
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_acc[-1] == pytest.approx(after)
    assert not model.training  # fit leaves the model ready for evaluation


def test_early_stopping_stops_and_restores_the_best_weights(zeros_and_ones):
    """Validation labels are the training labels flipped: every epoch of learning makes the
    validation loss worse, so the best epoch is the first and training must stop early."""
    train, _ = zeros_and_ones
    x, y = tlh.as_tensors(train)
    flipped = (x, 1 - y)
    model = _linear()
    history = tlh.fit(model, train, val_data=flipped, epochs=20, patience=2, lr=1e-2, batch_size=8,
                      progress=False)
    assert history.best_epoch == 0
    assert history.epochs == history.best_epoch + 1 + 2 < 20
    assert history.val_loss[-1] > history.val_loss[history.best_epoch]
    loss, _ = evaluate(model, nn.CrossEntropyLoss(), flipped, "cpu")
    assert loss == pytest.approx(history.val_loss[history.best_epoch], rel=1e-5)  # restored


def test_without_patience_the_last_weights_are_kept(zeros_and_ones):
    train, _ = zeros_and_ones
    x, y = tlh.as_tensors(train)
    model = _linear()
    history = tlh.fit(model, train, val_data=(x, 1 - y), epochs=3, lr=1e-2, batch_size=8, progress=False)
    assert history.epochs == 3 and history.best_epoch == 0
    loss, _ = evaluate(model, nn.CrossEntropyLoss(), (x, 1 - y), "cpu")
    assert loss == pytest.approx(history.val_loss[-1], rel=1e-5)


@pytest.mark.parametrize("epochs", [0, -1, 2.5, "3", None, True])
def test_fit_rejects_bad_epochs(zeros_and_ones, epochs):
    with pytest.raises(ValueError, match="epochs"):
        tlh.fit(_linear(), zeros_and_ones[0], epochs=epochs, progress=False)


def test_fit_patience_needs_validation_data(zeros_and_ones):
    with pytest.raises(ValueError, match="val_data"):
        tlh.fit(_linear(), zeros_and_ones[0], epochs=2, patience=1, progress=False)


def test_fit_on_a_fully_frozen_model_raises(zeros_and_ones):
    model = tlh.freeze(_linear())
    with pytest.raises(ValueError, match="no trainable parameters"):
        tlh.fit(model, zeros_and_ones[0], epochs=1, progress=False)


def test_fit_trains_only_unfrozen_parameters_and_uses_a_given_optimizer(zeros_and_ones):
    train, _ = zeros_and_ones
    model = tlh.freeze(_linear(), names=["1.bias"])
    weight, bias = model[1].weight.detach().clone(), model[1].bias.detach().clone()
    tlh.fit(model, train, epochs=1, lr=1e-2, progress=False)
    assert torch.equal(model[1].bias, bias) and not torch.equal(model[1].weight, weight)

    model = _linear()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    still = torch.optim.SGD(model.parameters(), lr=0.0)
    tlh.fit(model, train, epochs=1, optimizer=still, progress=False)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_fit_is_repeatable_with_a_seed(zeros_and_ones):
    train, _ = zeros_and_ones
    runs = []
    for seed in (0, 0, 1):
        model = _linear(seed=5)
        history = tlh.fit(model, train, epochs=2, lr=1e-2, batch_size=8, seed=seed, progress=False)
        runs.append((model[1].weight.detach().clone(), history.train_loss))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert not torch.equal(runs[0][0], runs[2][0])  # the seed sets the shuffling order


def test_evaluate_and_accuracy_agree_with_a_manual_count(mnist):
    _, test = mnist
    data = tlh.few_shot(test, 30, seed=0)  # 300 digits: two batches of evaluate's 256
    model = _linear(num_classes=10, seed=3)
    model.train()
    x, y = tlh.as_tensors(data)
    with torch.no_grad():
        logits = model(x)
    manual_acc = (logits.argmax(1) == y).float().mean().item()
    manual_loss = nn.functional.cross_entropy(logits, y).item()
    loss, acc = evaluate(model, nn.CrossEntropyLoss(), data, "cpu")
    assert acc == pytest.approx(manual_acc) and loss == pytest.approx(manual_loss, rel=1e-5)
    assert 0.0 < acc < 1.0
    assert model.training  # evaluate restores the mode it found
    assert tlh.accuracy(model, data) == pytest.approx(manual_acc)
    assert tlh.accuracy(model, (x, y), device="cpu") == pytest.approx(manual_acc)
    nan_loss, acc_again = evaluate(model, None, DataLoader(data, batch_size=7), torch.device("cpu"))
    assert math.isnan(nan_loss) and acc_again == pytest.approx(manual_acc)


def test_evaluate_uses_eval_mode():
    """Dropout off: a model that is all dropout gives the same answer every time."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.9), nn.Linear(4, 3))
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    model.eval()
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    assert tlh.accuracy(model, (x, y)) == pytest.approx(expected)


def test_train_one_epoch_returns_loss_and_accuracy_of_what_it_saw():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # no change: the numbers are checkable
    model.eval()
    loss, acc = train_one_epoch(model, nn.CrossEntropyLoss(), optimizer,
                                    DataLoader(TensorDataset(x, y), batch_size=16), torch.device("cpu"))
    assert model.training
    with torch.no_grad():
        logits = model(x)
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())


def test_make_loader_shuffles_by_seed_only():
    data = (torch.arange(20.0)[:, None], torch.arange(20))

    def order(loader):
        return torch.cat([y for _, y in loader]).tolist()
    torch.manual_seed(123)  # global state must not matter
    a = order(make_loader(data, batch_size=6, shuffle=True, seed=4))
    torch.manual_seed(456)
    b = order(make_loader(data, batch_size=6, shuffle=True, seed=4))
    c = order(make_loader(data, batch_size=6, shuffle=True, seed=5))
    assert a == b and a != c and sorted(a) == list(range(20))
    assert order(make_loader(data, batch_size=6)) == list(range(20))
    loader = DataLoader(TensorDataset(*data))
    assert make_loader(loader) is loader
    assert len(make_loader(data, batch_size=6)) == 4


def test_history_epochs():
    history = tlh.History(train_loss=[1.0, 0.5], train_acc=[0.5, 0.7])
    assert history.epochs == 2 and history.best_epoch is None and tlh.History().epochs == 0


# ---------------------------------------------------------------- recalibrate_bn
def _bn_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 2))


def test_recalibrate_bn_sets_running_statistics_to_the_images_statistics():
    model = _bn_net()
    images = torch.rand(40, 1, 8, 8) * 3 + 1
    out = tlh.recalibrate_bn(model, images)
    assert out is model and not model.training, "returns the model, ready for evaluation"
    with torch.no_grad():
        first = model[0](images)
    torch.testing.assert_close(model[1].running_mean, first.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(model[1].running_var, first.var(dim=(0, 2, 3), unbiased=True))
    assert model[1].momentum == 0.1, "the momentum is restored"


def test_recalibrate_bn_leaves_frozen_batchnorm_alone_and_averages_batches():
    model = tlh.freeze(_bn_net(), until="3")        # conv 0 and BatchNorm 1 frozen
    frozen = model[1].running_mean.clone()
    images = torch.rand(30, 1, 8, 8)
    tlh.recalibrate_bn(model, images, batch_size=10)
    assert torch.equal(model[1].running_mean, frozen), "a frozen BatchNorm keeps its statistics"
    with torch.no_grad():
        inner = model[3](model[2](model[1](model[0](images))))
    batch_means = torch.stack([inner[i:i + 10].mean(dim=(0, 2, 3)) for i in (0, 10, 20)]).mean(0)
    torch.testing.assert_close(model[4].running_mean, batch_means)


@pytest.mark.parametrize("images, batch_size", [(torch.empty(0, 1, 8, 8), 10), ([1, 2], 10),
                                                (torch.rand(4, 1, 8, 8), 0), (torch.rand(4, 1, 8, 8), True)])
def test_recalibrate_bn_rejects_bad_input(images, batch_size):
    with pytest.raises(ValueError, match="images|batch_size"):
        tlh.recalibrate_bn(_bn_net(), images, batch_size=batch_size)


def test_progress_bar_appears_only_for_work_that_takes_a_while(tiny_digits, capsys, monkeypatch):
    """Sub-second calls print nothing; past the delay, a bar on stderr shows the epochs moving."""
    from tlhelpers import train as train_module

    tlh.fit(tlh.SmallCNN(seed=0), tiny_digits[0], epochs=2)
    assert capsys.readouterr().err == "", "a quick fit must not print a progress bar"
    monkeypatch.setattr(train_module, "PROGRESS_DELAY_S", 0.0)
    tlh.fit(tlh.SmallCNN(seed=0), tiny_digits[0], epochs=2)
    assert "epochs" in capsys.readouterr().err, "past the delay the bar must show"
    tlh.fit(tlh.SmallCNN(seed=0), tiny_digits[0], epochs=2, progress=False)
    assert capsys.readouterr().err == ""
