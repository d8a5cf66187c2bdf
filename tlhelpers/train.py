"""Training and evaluation loops with a progress bar, a history and early stopping.

Shapes follow torchvision's reference scripts: ``train_one_epoch(model, criterion,
optimizer, loader, device)`` and ``evaluate(model, criterion, loader, device)``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .arguments import whole
from .env import PROGRESS_DELAY_S
from .data import as_tensors


@dataclass
class History:
    """Per-epoch metrics of one :func:`fit` run; ``best_epoch`` is the one kept."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_epoch: int | None = None

    @property
    def epochs(self) -> int:
        return len(self.train_loss)


def make_loader(data: Dataset | tuple, *, batch_size: int = 64, shuffle: bool = False,
                seed: int = 0) -> DataLoader:
    """Return a DataLoader whose shuffling depends only on ``seed`` (never on global state)."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, tuple):
        data = TensorDataset(*as_tensors(data))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    loader: DataLoader, device: torch.device, *, progress: bool = False
                    ) -> tuple[float, float]:
    """Train for one pass over ``loader``; return (mean loss, accuracy)."""
    from tqdm.auto import tqdm

    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in tqdm(loader, desc="train", disable=not progress, leave=False, delay=PROGRESS_DELAY_S):
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = criterion(logits, y)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return total_loss / seen, correct / seen


@torch.no_grad()
def evaluate(model: nn.Module, criterion: nn.Module | None, loader: DataLoader | Dataset | tuple,
             device: torch.device | str) -> tuple[float, float]:
    """Return (mean loss, accuracy) of ``model`` on ``loader``; loss is nan without a criterion."""
    loader = make_loader(loader, batch_size=256)
    was_training = model.training
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    try:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            if criterion is not None:
                total_loss += criterion(logits, y).item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
    finally:
        model.train(was_training)
    return (total_loss / seen if criterion is not None else float("nan")), correct / seen


def accuracy(model: nn.Module, data: Dataset | tuple, *, device: torch.device | str | None = None) -> float:
    """Return the fraction of ``data`` that ``model`` classifies correctly."""
    if device is None:
        device = next(model.parameters()).device
    return evaluate(model, None, data, device)[1]


def fit(model: nn.Module, train_data: Dataset | tuple, *, epochs: int, lr: float = 1e-3,
        val_data: Dataset | tuple | None = None, optimizer: torch.optim.Optimizer | None = None,
        batch_size: int = 64, weight_decay: float = 0.0, patience: int | None = None,
        device: torch.device | str | None = None, seed: int = 0, progress: bool = True) -> History:
    """Train ``model`` with cross-entropy and return its :class:`History`.

    Args:
        epochs: passes over ``train_data``.
        lr, weight_decay: for the default optimizer, Adam over the *trainable*
            parameters only (frozen ones never enter it).
        optimizer: use this one instead (e.g. with discriminative parameter groups).
        val_data: evaluated after every epoch; needed for ``patience``.
        patience: stop after this many epochs without a better validation loss and
            restore the best weights (early stopping).
        seed: fixes the shuffling order, so a run repeats exactly on CPU.
        progress: show a tqdm bar over epochs once training has run for 2 s.
    """
    from tqdm.auto import tqdm

    epochs = whole("epochs", epochs, low=1)
    if patience is not None and val_data is None:
        raise ValueError("early stopping (patience) needs val_data to watch")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    model.to(device)
    if optimizer is None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("the model has no trainable parameters: unfreeze some layers first")
        optimizer = torch.optim.Adam(trainable, lr=lr, weight_decay=weight_decay)
    criterion = nn.CrossEntropyLoss()
    loader = make_loader(train_data, batch_size=batch_size, shuffle=True, seed=seed)
    history = History()
    best_loss, best_state, waited = float("inf"), None, 0
    bar = tqdm(range(epochs), desc="epochs", disable=not progress, leave=False, delay=PROGRESS_DELAY_S)
    for epoch in bar:
        loss, acc = train_one_epoch(model, criterion, optimizer, loader, device)
        history.train_loss.append(loss)
        history.train_acc.append(acc)
        if val_data is None:
            continue
        val_loss, val_acc = evaluate(model, criterion, val_data, device)
        history.val_loss.append(val_loss)
        history.val_acc.append(val_acc)
        bar.set_postfix(loss=f"{loss:.3f}", val_acc=f"{val_acc:.3f}")
        if val_loss < best_loss:
            best_loss, history.best_epoch, waited = val_loss, epoch, 0
            if patience is not None:
                best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if patience is not None and waited >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history
