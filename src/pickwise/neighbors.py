"""Nearest-neighbour search for the embedding-space strategies (core-set, information density).

A search is a small frozen value with one method::

    search(queries (n, d), base (m, d), k) -> (sq_dist (n, k) float64, index (n, k) int64)

nearest first, squared Euclidean distances, k ≤ m. Strategies take one as ``neighbors=``:

* :class:`NumpySearch` — exact, blocks of ``chunk_size`` queries × ``chunk_size`` base rows
  (O(chunk²) extra memory), float64 arithmetic on float64 input; ties go to the smaller index.
* :class:`FaissFlat` — exact, faiss ``IndexFlatL2``: float32 arithmetic, so distances agree with
  :class:`NumpySearch` to float32 rounding and ties may break differently. For core-set's nearest
  labelled point it is about as fast as pickwise's own blocked pass (docs/performance.md, "Pools of
  millions"); exact k-nearest-neighbour lists (k > 1) are where it beats the numpy search.
* :class:`FaissIVF` — approximate: an inverted file of ``nlist`` k-means cells over the base, each
  query scanning ``nprobe`` cells. Deterministic (fixed ``seed`` for the training sample and faiss's
  k-means).
* :class:`FaissHNSW` — approximate: a hierarchical navigable small-world graph. Built with several
  threads, faiss's HNSW graph (and so the answers) can differ from run to run; use
  ``faiss.omp_set_num_threads(1)`` where that matters, or IVF.

Approximate searches may miss the true nearest base row: the distances they return are then
larger than the true ones (never smaller). docs/performance.md ("Pools of millions") measures what
that does to core-set picks.

faiss is optional (``pip install 'pickwise[faiss]'``) and imported only when a faiss search runs.
Queries are converted to float32 ``query_chunk`` rows at a time, so the search holds at most one
float32 copy of the base plus O(query_chunk·(d + k)) memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ._validation import check_float_rows, check_positive_int
from .progress import progress_bar
from .utils import chunks

__all__ = ["NeighborSearch", "NumpySearch", "FaissFlat", "FaissIVF", "FaissHNSW", "import_faiss"]


@runtime_checkable
class NeighborSearch(Protocol):
    """k nearest base rows of each query row, by squared Euclidean distance."""

    exact: ClassVar[bool]

    def search(self, queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def import_faiss() -> Any:
    """The ``faiss`` module, or an ImportError with the install hint (``pip install 'pickwise[faiss]'``)."""
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - exercised only without faiss
        raise ImportError("this search needs faiss: pip install 'pickwise[faiss]' (the faiss-cpu package)") from err
    return faiss


def _check(queries: Any, base: Any, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Finite (n, d) queries and (m, d) base (float32 kept, other numbers as float64) and 1 ≤ k ≤ m."""
    q, b = np.asarray(queries), np.asarray(base)
    if q.ndim != 2 or b.ndim != 2 or q.shape[1] != b.shape[1]:
        raise ValueError(f"queries and base must be (n, d) and (m, d); got shapes {q.shape} and {b.shape}")
    q, b = check_float_rows("queries", q), check_float_rows("base", b)
    if q.ndim != 2 or b.ndim != 2 or q.shape[1] != b.shape[1]:
        raise ValueError(f"queries and base must be (n, d) and (m, d); got shapes {q.shape} and {b.shape}")
    k = check_positive_int("k", k)
    if k > b.shape[0]:
        raise ValueError(f"k={k} exceeds the {b.shape[0]} base rows")
    return q, b, k


def _sq(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


@dataclass(frozen=True)
class NumpySearch:
    """Exact search in numpy blocks; float64 distances ‖q‖² + ‖b‖² − 2 q·b, clipped at 0."""

    chunk_size: int = 1024
    exact: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_positive_int("chunk_size", self.chunk_size)

    def search(self, queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q, b, k = _check(queries, base, k)
        n, cs = q.shape[0], self.chunk_size
        out_d, out_i = np.empty((n, k)), np.empty((n, k), dtype=np.int64)
        bsq = _sq(b).astype(np.float64)
        with progress_bar(n, "nearest neighbours") as bar:
            for rs in chunks(n, cs):
                qr = q[rs]
                qsq = _sq(qr).astype(np.float64)
                best_d = np.full((qr.shape[0], 0), np.inf)
                best_i = np.empty((qr.shape[0], 0), dtype=np.int64)
                for bs in chunks(b.shape[0], cs):
                    block = qsq[:, None] + bsq[None, bs] - 2.0 * (qr @ b[bs].T)
                    np.maximum(block, 0.0, out=block)
                    idx = np.broadcast_to(np.arange(bs.start, bs.stop), block.shape)
                    cand_d, cand_i = np.hstack([best_d, block]), np.hstack([best_i, idx])
                    # the k best candidates by (distance, index): ties go to the smaller index
                    order = np.lexsort((cand_i, cand_d), axis=-1)[:, :k]
                    cand_d = np.take_along_axis(cand_d, order, axis=1)
                    cand_i = np.take_along_axis(cand_i, order, axis=1)
                    best_d, best_i = cand_d, cand_i
                out_d[rs], out_i[rs] = best_d, best_i
                bar.update(rs.stop - rs.start)
        return out_d, out_i


def _faiss_search(index: Any, q: np.ndarray, k: int, query_chunk: int) -> tuple[np.ndarray, np.ndarray]:
    n = q.shape[0]
    out_d, out_i = np.empty((n, k)), np.empty((n, k), dtype=np.int64)
    with progress_bar(n, "faiss search") as bar:
        for rs in chunks(n, query_chunk):
            d, i = index.search(np.ascontiguousarray(q[rs], dtype=np.float32), k)
            out_d[rs] = np.maximum(d, 0.0)
            out_i[rs] = i
            bar.update(rs.stop - rs.start)
    return out_d, out_i


def _float32(b: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(b, dtype=np.float32)


@dataclass(frozen=True)
class FaissFlat:
    """Exact search with faiss ``IndexFlatL2`` (float32 arithmetic)."""

    query_chunk: int = 65536
    exact: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_positive_int("query_chunk", self.query_chunk)

    def search(self, queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q, b, k = _check(queries, base, k)
        faiss = import_faiss()
        index = faiss.IndexFlatL2(b.shape[1])
        index.add(_float32(b))
        return _faiss_search(index, q, k, self.query_chunk)


@dataclass(frozen=True)
class FaissIVF:
    """Approximate search with faiss ``IndexIVFFlat``.

    ``nlist`` cells (None: about 4·√m, at least 1), trained on at most ``train_size`` base rows drawn
    with ``seed``; ``nprobe`` cells scanned per query. Exact when ``nprobe ≥ nlist``.
    """

    nlist: int | None = None
    nprobe: int = 16
    train_size: int = 65536
    seed: int = 0
    query_chunk: int = 65536
    exact: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.nlist is not None:
            check_positive_int("nlist", self.nlist)
        check_positive_int("nprobe", self.nprobe)
        check_positive_int("train_size", self.train_size)
        check_positive_int("seed", self.seed, allow_zero=True)
        check_positive_int("query_chunk", self.query_chunk)

    def search(self, queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q, b, k = _check(queries, base, k)
        faiss = import_faiss()
        m, dim = b.shape
        nlist = self.nlist if self.nlist is not None else max(1, int(4 * np.sqrt(m)))
        nlist = min(nlist, m)
        quantizer = faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist)
        index.cp.seed = self.seed
        rng = np.random.default_rng(self.seed)
        train = b if m <= self.train_size else b[np.sort(rng.choice(m, size=self.train_size, replace=False))]
        # faiss warns (on stderr) below 39 training points per cell; results are still valid
        index.cp.min_points_per_centroid = 1
        index.train(_float32(train))
        for bs in chunks(m, self.query_chunk):
            index.add(_float32(b[bs]))
        index.nprobe = min(self.nprobe, nlist)
        return _faiss_search(index, q, k, self.query_chunk)


@dataclass(frozen=True)
class FaissHNSW:
    """Approximate search with faiss ``IndexHNSWFlat``: ``m`` links per node, ``ef_construction``
    and ``ef_search`` candidate-list sizes (larger = slower and more accurate)."""

    m: int = 32
    ef_construction: int = 64
    ef_search: int = 64
    query_chunk: int = 65536
    exact: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_positive_int("m", self.m)
        check_positive_int("ef_construction", self.ef_construction)
        check_positive_int("ef_search", self.ef_search)
        check_positive_int("query_chunk", self.query_chunk)

    def search(self, queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q, b, k = _check(queries, base, k)
        faiss = import_faiss()
        index = faiss.IndexHNSWFlat(b.shape[1], self.m)
        index.hnsw.efConstruction = self.ef_construction
        for bs in chunks(b.shape[0], self.query_chunk):
            index.add(_float32(b[bs]))
        index.hnsw.efSearch = max(self.ef_search, k)
        return _faiss_search(index, q, k, self.query_chunk)
