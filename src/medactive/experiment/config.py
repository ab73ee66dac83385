"""Experiment configuration: a TOML file validated with pydantic.

Unknown keys and bad values are rejected with one clear message naming the key, so a typo never
silently falls back to a default. Everything a run could trip over later is refused here, when
the file is read: infinite or NaN numbers, seeds NumPy or torch would reject
(:data:`~medactive.models.device.MAX_SEED`), a plan of more than :data:`MAX_PLAN` trained models
(repeats x initial strategies x acquisition strategies x budget points), and a file that is
not UTF-8 text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medactive.errors import ConfigError
from medactive.models.device import MAX_SEED

#: Most models one experiment may train (repeats x initial strategies x acquisition strategies
#: x budget points): at a few hundredths of a second per head fit, already about a day of
#: computing; a larger plan is a typo (``repeats = 1000000000000``), refused before it
#: allocates anything.
MAX_PLAN = 1_000_000
#: A seed NumPy and torch both accept, with room for the seeds derived from it.
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class _Strict(BaseModel):
    # inf and NaN are never a budget, a rate or a ratio
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DatasetConfig(_Strict):
    """Which data, which splits, optional imbalance.

    ``source``: a MedMNIST name, an ``.npz`` path or an image-folder ``.csv`` (paths relative to
    the config file). ``split="stratified"`` pools all images and re-splits with ``sizes``.
    ``long_tail``: imbalance ratio rho applied to every split (class order from train).
    ``train_limit``: optional stratified subsample of the training pool (quick runs).
    ``image_root``, ``image_size``, ``id_column``, ``label_column`` (image-folder ``.csv``
    only): the folder the CSV's image paths are relative to (default: the CSV's folder;
    relative to the config file), the side images are resized to (default 28, MedMNIST's), and
    the CSV's image and label columns (default: detected, see docs/data.md).
    """

    source: str = "bloodmnist"
    image_root: str | None = None
    image_size: int | None = Field(default=None, ge=8, le=1024)
    id_column: str | None = None
    label_column: str | None = None
    split: Literal["official", "stratified"] = "official"
    sizes: tuple[float, float, float] | None = None
    long_tail: float | None = Field(default=None, ge=1.0)
    train_limit: int | None = Field(default=None, ge=10)
    val_limit: int | None = Field(default=None, ge=10)
    test_limit: int | None = Field(default=None, ge=10)
    seed: Seed = 0
    #: image-folder CSV only: decode into the on-disk store and read lazily (pools beyond memory)
    lazy: bool = False

    @model_validator(mode="after")
    def _sizes_for_stratified(self) -> DatasetConfig:
        if self.split == "stratified" and self.sizes is None:
            raise ValueError("split = 'stratified' needs sizes = [train, val, test]")
        csv_only = [k for k in ("image_root", "image_size", "id_column", "label_column")
                    if getattr(self, k) is not None]
        if csv_only and not self.source.lower().endswith(".csv"):
            raise ValueError(f"{', '.join(csv_only)} apply to an image-folder .csv source "
                             "(a MedMNIST .npz holds its images at their size)")
        return self

    def folder_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`medactive.data.load_dataset` for an image-folder CSV."""
        options: dict[str, Any] = {"lazy": True} if self.lazy else {}
        for key in ("image_root", "image_size", "id_column", "label_column"):
            if getattr(self, key) is not None:
                options[key] = getattr(self, key)
        return options


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

    ``encoder``: ``"moco"`` (contrastive pre-training on the training pool, cached), ``"random"``
    (random init: a fast, weak baseline for tests), ``"imagenet"`` (EfficientNet-Lite0 weights,
    ``[pretrained]`` extra) or ``"features"``: your own embeddings from ``features`` (a ``.npy``
    with one row per image of the dataset in train, val, test order, or Parquet with an id
    column; path relative to the config file), head mode only.
    """

    mode: Literal["head", "finetune"] = "head"
    backbone: str = "compact"
    encoder: Literal["moco", "random", "imagenet", "features"] = "moco"
    features: str | None = None
    dropout: float = Field(default=0.2, ge=0, lt=1)
    pretrain: PretrainConfig = PretrainConfig()
    head: HeadTrainConfig = HeadTrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()

    @model_validator(mode="after")
    def _features_file(self) -> ModelConfig:
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
    seed: Seed = 0
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

    @property
    def plan_size(self) -> int:
        """Models the experiment trains: repeats x initial x acquisition strategies x budget
        points (the initial query and each round)."""
        acq = self.acquisition
        points = (acq.rounds if acq.schedule is None else len(acq.schedule)) + 1
        return (self.run.repeats * len(self.initial.strategies) * len(acq.strategies)
                * points)

    @model_validator(mode="after")
    def _bounded_plan(self) -> ExperimentConfig:
        if self.plan_size > MAX_PLAN:
            acq = self.acquisition
            rounds = acq.rounds if acq.schedule is None else len(acq.schedule)
            raise ValueError(
                f"the plan trains {self.plan_size:,} models ({self.run.repeats:,} repeats x "
                f"{len(self.initial.strategies)} initial x {len(acq.strategies)} acquisition "
                f"strategies x {rounds + 1:,} budget points), more than {MAX_PLAN:,}; "
                "lower run.repeats or acquisition.rounds")
        return self


def _format_error(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{source}: unknown key '{where}'"
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "finite_number":
        message = f"must be a finite number, got {err.get('input')!r}"
    return f"{source}: {where}: {message}" if where else f"{source}: {message}"


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
    data = read_toml(path)
    dataset: dict[str, Any] = data["dataset"] if isinstance(data.get("dataset"), dict) else {}
    model: dict[str, Any] = data["model"] if isinstance(data.get("model"), dict) else {}
    source = dataset.get("source")
    if isinstance(source, str) and ("/" in source or source.endswith((".npz", ".csv"))):
        resolved = (path.parent / source).resolve()
        if resolved.exists():
            dataset["source"] = str(resolved)
    image_root = dataset.get("image_root")
    if isinstance(image_root, str):
        dataset["image_root"] = str((path.parent / image_root).resolve())
    features = model.get("features")
    if isinstance(features, str) and (path.parent / features).exists():
        model["features"] = str((path.parent / features).resolve())
    data.setdefault("name", path.stem)
    return parse_config(data, str(path))


def check_backbone(name: str, what: str = "model.backbone") -> None:
    """Refuse a backbone name the model builder does not know, in milliseconds (the builder
    itself is the list, so a backbone added there is accepted here without a second list).

    Raises:
        ConfigError: naming ``what`` and the known backbones.
    """
    from medactive.models import build_backbone

    try:
        build_backbone(name, in_channels=3, image_size=32)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def check_model(config: ExperimentConfig) -> None:
    """What the model section names must exist here: the backbone an encoder builds (checked
    before a run writes anything)."""
    if config.model.encoder in ("moco", "random"):  # "imagenet" and "features" ignore it
        check_backbone(config.model.backbone)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file that must be UTF-8 text (as TOML requires; a UTF-8 byte-order mark,
    which Windows editors write, is accepted).

    Raises:
        ConfigError: unreadable, not UTF-8 (UTF-16 is named as such, with the advice to save
            as UTF-8), or invalid TOML.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(raw) > 1 and b"\x00" in raw[:2]):
        raise ConfigError(f"{path}: the file is UTF-16 text; TOML must be UTF-8 (save it as "
                          "UTF-8 in your editor)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
                          "TOML must be UTF-8 (save it as UTF-8 in your editor)") from None
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
