"""A labelling project on disk: items, classes, rounds and every answer, in one folder.

    from pickwise.project import Project

    p = Project.init("spam-project", data="texts.csv", labels=["spam", "ham"])
    summary = p.next(100)            # trains, scores the pool, writes rounds/<id>/tasks.json for Label Studio
    p.import_labels("export.json")   # Label Studio full-JSON export (or CSV / JSON_MIN)
    p.next(100)                      # the next round trains on exactly the labels imported

The folder holds ``pickwise.toml`` (settings), ``project.sqlite`` (:mod:`pickwise.project.store`),
``features/`` (cached model inputs) and ``rounds/<id>/`` (checkpoint, scores, the batch's files).
Image items reach Label Studio as ``/data/local-files/?d=<path relative to the media root>``: run LS
with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set
to the image folder given to ``init`` (``media_root`` in ``pickwise.toml``), and add a local-files storage
for that folder in the LS project. Tasks carry ``score = rank / batch size`` (a rank, lowest = ask first),
not the acquisition value, which is in ``data.pw_acq``.

Importing this package is light: :class:`Project` loads on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Project", "RoundSummary", "ImportSummary"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'pickwise.project' has no attribute {name!r}")
