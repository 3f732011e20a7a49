"""``pickwise.toml``: a project's settings (read with tomllib, written with tomli_w).

    [project]
    kind = "text"            # text | image | features (set by the data given to init)
    seed = 0
    [data]
    id_column = "id"         # optional; found without it when the column is named "id"
    text_column = "text"     # optional; found without it when the column is named "text"
    media_root = "/abs/path" # image projects: the folder ids are relative to
    [model]
    name = "tfidf"           # tfidf | minilm (text), mlp (features), cnn (images)
    [strategy]
    name = "badge"           # any name of pickwise.catalog.strategy_names()
    [labels]
    aggregation = "majority" # majority (over annotators, ties → latest) | latest (latest event of anyone)

Class names are not in the file: they live in the database (``classes``, in hotkey order), which is
the one place they are read from.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONFIG_NAME = "pickwise.toml"
KINDS = ("text", "image", "features")
MODELS = {"text": ("tfidf", "minilm"), "image": ("cnn",), "features": ("mlp",)}
DEFAULT_MODEL = {"text": "tfidf", "image": "cnn", "features": "mlp"}
AGGREGATIONS = ("majority", "latest")


@dataclass
class ProjectConfig:
    """The settings of one project (see the module docstring for the file's layout)."""

    kind: str
    seed: int = 0
    model: str = ""
    strategy: str = ""
    aggregation: str = "majority"
    id_column: str | None = None
    text_column: str | None = None
    media_root: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"project kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if not self.model:
            self.model = DEFAULT_MODEL[self.kind]
        if self.model not in MODELS[self.kind]:
            raise ValueError(f"model {self.model!r} does not fit {self.kind} data; choose one of "
                             f"{', '.join(MODELS[self.kind])}")
        if not self.strategy:
            self.strategy = "badge"
        from ..catalog import strategy_names

        if self.strategy not in strategy_names():
            raise ValueError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(strategy_names())}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}; got {self.aggregation!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {self.seed!r}")

    def to_toml(self) -> dict[str, Any]:
        data = {k: v for k, v in (("id_column", self.id_column), ("text_column", self.text_column),
                                  ("media_root", self.media_root)) if v is not None}
        return {"project": {"kind": self.kind, "seed": self.seed}, "data": data,
                "model": {"name": self.model, **self.model_options}, "strategy": {"name": self.strategy},
                "labels": {"aggregation": self.aggregation}}

    @classmethod
    def from_toml(cls, doc: dict[str, Any]) -> ProjectConfig:
        project, data = doc.get("project", {}), doc.get("data", {})
        model = dict(doc.get("model", {}))
        return cls(kind=project.get("kind", ""), seed=project.get("seed", 0), model=model.pop("name", ""),
                   strategy=doc.get("strategy", {}).get("name", ""),
                   aggregation=doc.get("labels", {}).get("aggregation", "majority"),
                   id_column=data.get("id_column"), text_column=data.get("text_column"),
                   media_root=data.get("media_root"), model_options=model)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_config(project_dir: str | Path) -> ProjectConfig:
    """The settings in ``<project_dir>/pickwise.toml`` (a ValueError names the file and the problem)."""
    path = Path(project_dir) / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"{path} not found: {project_dir} is not a pickwise project (create one with pickwise init)")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: {e}") from None
    try:
        return ProjectConfig.from_toml(doc)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def write_config(project_dir: str | Path, config: ProjectConfig) -> Path:
    """Write ``pickwise.toml`` atomically (temporary name, fsync, os.replace)."""
    try:
        import tomli_w
    except ImportError as e:  # pragma: no cover
        raise ImportError("writing pickwise.toml needs tomli-w: pip install 'pickwise[label]'") from e
    from .files import write_atomic

    path = Path(project_dir) / CONFIG_NAME
    write_atomic(path, tomli_w.dumps(config.to_toml()).encode("utf-8"))
    return path
