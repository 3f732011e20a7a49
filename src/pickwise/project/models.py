"""The model of a project: its inputs (cached under ``features/``), the classifier, and checkpoints.

- ``tfidf`` (text, default): TF-IDF fitted once on the text of ALL items, labelled or not
  (unsupervised and transductive: no label is used, but every item's words shape the vocabulary), then
  TruncatedSVD to 256 components (seeded; fewer when the project is tiny), cached as
  ``features/tfidf-svd.npy``; a LogisticRegression head (:class:`pickwise.adapters.SklearnClassifier`).
- ``minilm`` (text): frozen all-MiniLM-L6-v2 sentence embeddings (:mod:`pickwise.encoders`, cached
  under ``features/minilm/``), a LogisticRegression head.
- ``mlp`` (``.npy`` features): :func:`pickwise.adapters.nets.mlp` in a TorchClassifier.
- ``cnn`` (images): each image through PIL, grayscale (all images are) or RGB, resized to 32×32,
  cached as uint8 ``features/images32.npy``; :func:`pickwise.adapters.nets.small_cnn`.

A cache is valid while the items are the same: ``features/<name>.json`` holds the item count and a
sha256 over the items' content hashes in index order; adding data recomputes it.

Checkpoints hold numbers only, never pickle: scikit-learn heads as the fitted arrays in an ``.npz``
(with a JSON of the settings beside it), torch modules as a safetensors ``state_dict``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .files import commit_file, sha256_file, tmp_name, write_atomic

SVD_COMPONENTS = 256
IMAGE_SIDE = 32


def items_fingerprint(sha1s: list[str]) -> str:
    """sha256 over the items' content hashes in index order (what a feature cache was computed from)."""
    h = hashlib.sha256()
    for s in sha1s:
        h.update(s.encode("ascii") + b"\n")
    return h.hexdigest()


def _cached(path: Path, fingerprint: str, n: int) -> np.ndarray | None:
    meta = path.with_suffix(".json")
    if not (path.is_file() and meta.is_file()):
        return None
    info = json.loads(meta.read_text(encoding="utf-8"))
    if info.get("items_sha256") != fingerprint or info.get("n_items") != n:
        return None
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _save_cache(path: Path, x: np.ndarray, fingerprint: str, info: dict[str, Any]) -> None:
    tmp = tmp_name(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(tmp, x)
    commit_file(tmp, path)
    write_atomic(path.with_suffix(".json"),
                 json.dumps({"n_items": int(x.shape[0]), "items_sha256": fingerprint, **info}).encode())


def tfidf_svd(texts: list[str], *, seed: int, n_components: int = SVD_COMPONENTS) -> np.ndarray:
    """TF-IDF over all ``texts`` → TruncatedSVD (seeded): float32 of shape (n, min(n_components, ...))."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(sublinear_tf=True, min_df=1, dtype=np.float32)
    tf = vec.fit_transform(texts)
    comps = max(1, min(n_components, tf.shape[1] - 1, tf.shape[0] - 1))
    svd = TruncatedSVD(n_components=comps, random_state=seed, algorithm="randomized", n_iter=4)
    z = svd.fit_transform(tf).astype(np.float32)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.maximum(norms, 1e-12)


def load_images(root: Path, relpaths: list[str]) -> np.ndarray:
    """Images at ``root/relpath`` as uint8 (n, C, 32, 32): C = 1 when every image is grayscale, else 3."""
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover
        raise ImportError("image projects need Pillow: pip install pillow") from e
    # two passes, so only one full-size image is in memory at a time: the modes (Image.open reads the
    # header only), then each image decoded, converted and shrunk into the output
    gray = True
    for rel in relpaths:
        with Image.open(root / rel) as im:
            gray = gray and im.mode in ("L", "1", "I;16", "I")
    mode, c = ("L", 1) if gray else ("RGB", 3)
    out = np.empty((len(relpaths), c, IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8)
    for i, rel in enumerate(relpaths):
        with Image.open(root / rel) as im:
            a = np.asarray(im.convert(mode).resize((IMAGE_SIDE, IMAGE_SIDE), Image.BILINEAR), dtype=np.uint8)
        out[i] = a[None] if gray else a.transpose(2, 0, 1)
    return out


def model_inputs(project_dir: Path, model: str, *, item_ids: list[str], texts: list[str | None],
                 relpaths: list[str | None], sha1s: list[str], seed: int, media_root: Path | None) -> np.ndarray:
    """The model inputs of every item, index order, from the cache under ``features/`` or computed now."""
    feats = project_dir / "features"
    fp = items_fingerprint(sha1s)
    n = len(sha1s)
    if model == "tfidf":
        path = feats / "tfidf-svd.npy"
        x = _cached(path, fp, n)
        if x is None:
            x = tfidf_svd([t or "" for t in texts], seed=seed)
            _save_cache(path, x, fp, {"model": "tfidf", "seed": seed, "n_components": int(x.shape[1]),
                                      "note": "TF-IDF fitted on all items' text (unsupervised, transductive)"})
            x = np.load(path, mmap_mode="r", allow_pickle=False)
        return x
    if model == "minilm":
        try:
            from ..encoders import SentenceEncoder, embed_cached
        except ImportError as e:
            raise ImportError("model 'minilm' needs pickwise.encoders and sentence-transformers: "
                              "pip install 'pickwise[encoders]'") from e
        return embed_cached(SentenceEncoder(), [t or "" for t in texts], item_ids, feats / "minilm", progress=False)
    if model == "mlp":
        x = np.load(feats / "input.npy", mmap_mode="r", allow_pickle=False)
        if x.shape[0] < n:
            raise ValueError(f"{feats / 'input.npy'} has {x.shape[0]} rows but the project has {n} items")
        return x[:n]
    if model == "cnn":
        path = feats / "images32.npy"
        x = _cached(path, fp, n)
        if x is None:
            if media_root is None:
                raise ValueError("an image project needs media_root in pickwise.toml")
            x = load_images(media_root, [r or "" for r in relpaths])
            _save_cache(path, x, fp, {"model": "cnn", "side": IMAGE_SIDE})
            x = np.load(path, mmap_mode="r", allow_pickle=False)
        return x
    raise ValueError(f"unknown model {model!r}")


def append_features(project_dir: Path, rows: np.ndarray, n_before: int) -> None:
    """Append ``.npy`` feature rows after the first ``n_before`` (rows past them are from a crashed add)."""
    path = project_dir / "features" / "input.npy"
    if path.is_file():
        old = np.load(path, allow_pickle=False)[:n_before]
        if old.shape[1:] != rows.shape[1:]:
            raise ValueError(f"new features have {rows.shape[1]} columns; the project's have {old.shape[1]}")
        rows = np.concatenate([old, rows])
    tmp = tmp_name(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(tmp, np.ascontiguousarray(rows, dtype=np.float32))
    commit_file(tmp, path)


def make_model(model: str, *, n_classes: int, x: Any) -> Any:
    """A fresh, unfitted classifier for ``model`` over inputs shaped like ``x``."""
    if model in ("tfidf", "minilm"):
        from sklearn.linear_model import LogisticRegression

        from ..adapters.sklearn import SklearnClassifier

        return SklearnClassifier(LogisticRegression(max_iter=1000), n_classes=n_classes)
    from ..adapters.nets import mlp, small_cnn
    from ..adapters.torch import TorchClassifier

    if model == "mlp":
        return TorchClassifier(mlp(int(np.prod(x.shape[1:])), n_classes, hidden=(128,), dropout=0.2),
                               n_classes=n_classes, epochs=50)
    return TorchClassifier(small_cnn(int(x.shape[1]), n_classes, image_size=IMAGE_SIDE), n_classes=n_classes,
                           epochs=30)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v) for k, v in params.items()}


def save_checkpoint(model: Any, path_stem: Path) -> tuple[Path, str]:
    """Write the fitted ``model`` next to ``path_stem`` (``.npz`` + ``.json``, or ``.safetensors`` + ``.json``).

    Returns the weights file and its sha256. Files are written under temporary names, fsynced and
    renamed; no pickle anywhere.
    """
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "estimator"):  # SklearnClassifier
        est = getattr(model, "estimator_", None)
        arrays: dict[str, np.ndarray] = {"classes": np.asarray(model.classes_, dtype=np.int64)}
        if est is not None:
            for name in ("coef_", "intercept_", "classes_", "n_iter_"):
                if hasattr(est, name):
                    arrays[name.rstrip("_")] = np.asarray(getattr(est, name))
        info = {"type": "sklearn", "estimator": type(model.estimator).__name__, "n_classes": model.n_classes,
                "n_features": int(model.n_features_), "single_class": est is None,
                "params": _jsonable(model.estimator.get_params())}
        path = path_stem.with_suffix(".npz")
        tmp = tmp_name(path)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    else:  # TorchClassifier
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous().clone() for k, v in model.module_.state_dict().items()}
        info = {"type": "torch", "module": repr(model.module), "n_classes": model.n_classes,
                "row_shape": list(model.row_shape_)}
        path = path_stem.with_suffix(".safetensors")
        tmp = tmp_name(path)
        save_file(state, str(tmp))
    commit_file(tmp, path)
    digest = sha256_file(path)
    write_atomic(path_stem.with_suffix(".json"), json.dumps({**info, "weights": path.name, "sha256": digest},
                                                            indent=1).encode())
    return path, digest


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The arrays of a checkpoint written by :func:`save_checkpoint` (npz without pickle, or safetensors)."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    from safetensors.numpy import load_file

    return load_file(str(path))
