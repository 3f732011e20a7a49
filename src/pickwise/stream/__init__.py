"""Streaming active learning: VeSSAL, stream baselines, stream sources and the stream loop.

Selectors decide item by item, for good (``observe``/``observe_many``), with one uniform drawn
per item from the caller's ``rng``; their state goes through ``state_dict``/``load_state_dict``.

    sel = VeSSAL(q=0.05)                                   # or VeSSAL(budget=500, length=20_000)
    # PacedVeSSAL(q=0.05): the same volume-sampling preference, a realised rate that holds q
    for record in stream_segments(lambda: make_net(), sel, x, y, order="pc", segment=2000,
                                  initial=100, budget=1000, evaluate=holdout, seed=0):
        print(record.segment, record.n_labels, record.metrics)
"""

from .baselines import StreamUncertainty, StreamUniform
from .features import KroneckerSketch, grad_features, pen_features, stream_features
from .loop import SegmentRecord, load_segments, save_segments, stream_segments
from .order import first_pc_scores, stream_order
from .paced import PacedVeSSAL
from .sources import (
    array_chunks,
    csv_chunks,
    iterable_chunks,
    jsonl_chunks,
    open_chunks,
    parquet_chunks,
    select_stream,
)
from .vessal import VeSSAL

__all__ = [
    "VeSSAL",
    "PacedVeSSAL",
    "StreamUniform",
    "StreamUncertainty",
    "KroneckerSketch",
    "grad_features",
    "pen_features",
    "stream_features",
    "SegmentRecord",
    "stream_segments",
    "save_segments",
    "load_segments",
    "select_stream",
    "stream_order",
    "first_pc_scores",
    "array_chunks",
    "iterable_chunks",
    "jsonl_chunks",
    "csv_chunks",
    "parquet_chunks",
    "open_chunks",
]
