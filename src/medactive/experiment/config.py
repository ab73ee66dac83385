"""Experiment configuration: a TOML file validated with pydantic.

Unknown keys and bad values are rejected with one clear message naming the key, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medactive.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    """Which data, which splits, optional imbalance.

    ``source``: a MedMNIST name, an ``.npz`` path or an image-folder ``.csv`` (paths relative to
    the config file). ``split="stratified"`` pools all images and re-splits with ``sizes``.
    ``long_tail``: imbalance ratio rho applied to every split (class order from train).
    ``train_limit``: optional stratified subsample of the training pool (quick runs).
    """

    source: str = "bloodmnist"
    split: Literal["official", "stratified"] = "official"
    sizes: tuple[float, float, float] | None = None
    long_tail: float | None = Field(default=None, ge=1.0)
    train_limit: int | None = Field(default=None, ge=10)
    val_limit: int | None = Field(default=None, ge=10)
    test_limit: int | None = Field(default=None, ge=10)
    seed: int = 0
    #: image-folder CSV only: decode into the on-disk store and read lazily (pools beyond memory)
    lazy: bool = False

    @model_validator(mode="after")
    def _sizes_for_stratified(self) -> DatasetConfig:
        if self.split == "stratified" and self.sizes is None:
            raise ValueError("split = 'stratified' needs sizes = [train, val, test]")
        return self


class PretrainConfig(_Strict):
    """Contrastive (MoCo v2) pre-training of the frozen encoder; fields of ``MocoConfig``."""

    epochs: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=8)
    lr: float | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, gt=0)
    tau_map: float | None = Field(default=None, gt=0)
    map_rule: Literal["softmax", "hit", "rank"] | None = None
    map_competitors: Literal["batch", "batch+queue", "probe"] | None = None
    probe_pairs: int | None = Field(default=None, ge=0)
    probe_epochs: int | None = Field(default=None, ge=1)
    momentum: float | None = Field(default=None, gt=0, lt=1)
    queue_size: int | None = Field(default=None, ge=0)
    repeats: int | None = Field(default=None, ge=1)

    def as_kwargs(self) -> dict[str, Any]:
        """Only the fields set in the file (the rest keep ``MocoConfig``'s defaults)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class HeadTrainConfig(_Strict):
    """Head mode: dropout + linear on frozen features (see ``medactive.models.HeadConfig``).

    ``standardize``: z-score the frozen features with the pool's statistics before the head.
    """

    epochs: int = Field(default=200, ge=1)
    lr: float = Field(default=1e-2, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    batch_size: int | None = Field(default=256, ge=1)
    class_balanced: bool = False
    standardize: bool = True


class FinetuneConfig(_Strict):
    """Finetune mode: every layer trained each round (see ``medactive.models.TrainConfig``)."""

    epochs: int = Field(default=20, ge=1)
    lr: float = Field(default=5e-4, gt=0)
    weight_decay: float = Field(default=1e-5, ge=0)
    lr_decay: float = Field(default=0.995, gt=0, le=1)
    batch_size: int = Field(default=64, ge=2)
    early_stopping_patience: int | None = Field(default=None, ge=1)


class ModelConfig(_Strict):
    """Backbone and per-round training mode.

    ``encoder``: a name of the encoder registry (:mod:`medactive.models.encoders`, features
    cached on disk): ``"moco"`` (contrastive pre-training on the training pool), ``"imagenet"``
    (EfficientNet-Lite0 weights, ``[pretrained]`` extra) or ``"hf:<hub id or folder>"`` (a
    ``transformers`` backbone, ``[encoders]`` extra); or ``"random"`` (random init of
    ``backbone``: a fast, weak baseline for tests); or ``"features"``: your own embeddings from
    ``features`` (a ``.npy`` with one row per image of the dataset in train, val, test order, or
    Parquet with an id column; path relative to the config file), head mode only.
    ``encoder_weights``: weights file or folder for ``imagenet`` / ``hf:`` (relative to the
    config file), e.g. on a machine without network.
    """

    mode: Literal["head", "finetune"] = "head"
    backbone: str = "compact"
    encoder: str = "moco"
    encoder_weights: str | None = None
    features: str | None = None
    dropout: float = Field(default=0.2, ge=0, lt=1)
    pretrain: PretrainConfig = PretrainConfig()
    head: HeadTrainConfig = HeadTrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()

    @field_validator("encoder")
    @classmethod
    def _encoder_name(cls, value: str) -> str:
        if value in ("moco", "random", "imagenet", "features") or (
                value.startswith("hf:") and len(value) > 3):
            return value
        raise ValueError("must be moco, imagenet, hf:<hub id or folder>, random or features")

    @model_validator(mode="after")
    def _features_file(self) -> ModelConfig:
        if self.encoder_weights is not None and not (
                self.encoder == "imagenet" or self.encoder.startswith("hf:")):
            raise ValueError("encoder_weights applies to encoder = 'imagenet' or 'hf:...'")
        if (self.encoder == "features") != (self.features is not None):
            raise ValueError("encoder = 'features' and a features = 'FILE' go together")
        if self.encoder == "features" and self.mode != "head":
            raise ValueError("encoder = 'features' trains the head only: use mode = 'head'")
        return self


class StrategySpec(_Strict):
    """A strategy name, its parameters, and an optional display label."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None

    @property
    def display(self) -> str:
        """Name used in results and tables."""
        return self.label or self.name


def _specs(value: Any) -> Any:
    if isinstance(value, list):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


class InitialConfig(_Strict):
    """The initial labelled set: one or more strategies (random or cold-start) and a budget.

    ``budget``: a count (>= 1) or a fraction of the training pool (< 1).
    """

    strategies: list[StrategySpec] = Field(default_factory=lambda: [StrategySpec(name="random")])
    budget: float = Field(default=0.1, gt=0)

    _coerce = field_validator("strategies", mode="before")(lambda cls, v: _specs(v))


class AcquisitionConfig(_Strict):
    """Acquisition strategies and the budget schedule.

    ``budget``: per round, a count or a fraction of the training pool; or ``schedule``: explicit
    cumulative labelled counts/fractions after each round (overrides ``budget`` and ``rounds``).
    """

    strategies: list[StrategySpec] = Field(default_factory=lambda: [StrategySpec(name="random")])
    rounds: int = Field(default=6, ge=0)
    budget: float = Field(default=0.06, gt=0)
    schedule: list[float] | None = None

    _coerce = field_validator("strategies", mode="before")(lambda cls, v: _specs(v))


Metric = Literal["auc", "accuracy", "balanced_accuracy"]


class RunConfig(_Strict):
    """Repeats, seeds and what to report."""

    repeats: int = Field(default=5, ge=1)
    seed: int = 0
    metrics: list[Metric] = Field(
        default_factory=lambda: list[Metric](["auc", "accuracy", "balanced_accuracy"])
    )
    reference: bool = True
    correlation: tuple[int, int] | None = None
    device: str | None = None
    #: Ray cluster for feature extraction and scoring: "local", "auto" or "ray://HOST:PORT";
    #: None (default) = one process, no Ray needed.
    ray: str | None = None

    @field_validator("ray")
    @classmethod
    def _ray_address(cls, value: str | None) -> str | None:
        if value is not None and not (value in ("local", "auto") or value.startswith("ray://")):
            raise ValueError("must be 'local', 'auto' or 'ray://HOST:PORT'")
        return value


class ExperimentConfig(_Strict):
    """A whole experiment: dataset, model, initial query, acquisition, repeats."""

    name: str = "experiment"
    description: str = ""
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig = ModelConfig()
    initial: InitialConfig = InitialConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig()
    run: RunConfig = RunConfig()


def _format_error(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{source}: unknown key '{where}'"
    return f"{source}: {where}: {err['msg']}"


def parse_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config dict; raise :class:`ConfigError` naming the first bad key."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a TOML config; relative data paths are resolved against its folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    source = data.get("dataset", {}).get("source")
    if isinstance(source, str) and ("/" in source or source.endswith((".npz", ".csv"))):
        resolved = (path.parent / source).resolve()
        if resolved.exists():
            data["dataset"]["source"] = str(resolved)
    for key in ("features", "encoder_weights"):
        given = data.get("model", {}).get(key)
        if isinstance(given, str) and (path.parent / given).exists():
            data["model"][key] = str((path.parent / given).resolve())
    data.setdefault("name", path.stem)
    return parse_config(data, str(path))
