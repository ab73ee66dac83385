"""Project settings of the labelling workflow (saved in ``project.db``, changed with
``medactive project settings``).

Every default must make sense for any dataset (docs/labelling.md, "Settings"):

* ``show_predictions`` ``"after"``: the model's guess is shown once the reader has answered,
  never before (a clinician shown a guess first tends to agree with it: anchoring);
* ``validation_share`` 0.2 and ``validation_mode`` ``"crossfit"``: a fifth of each round's
  budget is a uniformly random draw (the validation sample); cross-fitting trains on it too and
  measures the validation AUC out of fold, ``"holdout"`` keeps it out of training, ``"none"``
  draws nothing (:mod:`medactive.rounds.loop`; the evidence is in docs/labelling.md);
* ``stop_kappa`` 0.99 over ``stop_rounds`` 3 consecutive rounds: Bloodgood & Vijay-Shanker's
  (2009) stabilizing-predictions criterion as published; ``stop_sample`` 1000 images is a
  stop set large enough for a stable κ and cheap for any project;
* ``reads_per_image`` 1: one reader per image (a second read is asked only where the model
  disagrees, ``second_read_share``, default off); 2 for double reading;
* ``pretrain_epochs`` 10: what a query run from the page uses for the first (cold-start) query.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from medactive.errors import ConfigError

SHOW_PREDICTIONS = ("after", "first")
VALIDATION_MODES = ("crossfit", "holdout", "none")  # medactive.rounds.loop.VALIDATION_MODES


@dataclass
class ProjectSettings:
    """The labelling workflow's settings (see the module docstring for the defaults)."""

    show_predictions: str = "after"
    validation_share: float = 0.2
    validation_mode: str = "crossfit"
    stop_kappa: float = 0.99
    stop_rounds: int = 3
    stop_sample: int = 1000
    reads_per_image: int = 1
    second_read_share: float = 0.0
    pretrain_epochs: int = 10

    def check(self) -> ProjectSettings:
        """Raise :class:`ConfigError` naming the first bad value; returns ``self``."""
        if self.show_predictions not in SHOW_PREDICTIONS:
            raise ConfigError(f"show_predictions must be one of {SHOW_PREDICTIONS}, got "
                              f"{self.show_predictions!r}")
        if self.validation_mode not in VALIDATION_MODES:
            raise ConfigError(f"validation_mode must be one of {', '.join(VALIDATION_MODES)}, "
                              f"got {self.validation_mode!r}")
        for name in ("validation_share", "second_read_share"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 0.5:
                raise ConfigError(f"{name} must be between 0 and 0.5, got {value!r}")
        if not isinstance(self.stop_kappa, (int, float)) or not 0 < self.stop_kappa <= 1:
            raise ConfigError(f"stop_kappa must be in (0, 1], got {self.stop_kappa!r}")
        for name, low in (("stop_rounds", 1), ("stop_sample", 10), ("reads_per_image", 1),
                          ("pretrain_epochs", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        return self

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def trains_on_validation_labels(settings: ProjectSettings) -> bool:
    """True when the classifier also trains on the validation sample's labels (cross-fitting),
    as :attr:`medactive.rounds.ValidationPolicy.trains_on_validation` says; kept here so the
    page's request check stays free of torch."""
    return settings.validation_mode == "crossfit"


def parse_settings(values: dict[str, Any]) -> ProjectSettings:
    """Settings from a dict (unknown keys refused), checked."""
    known = {f.name for f in fields(ProjectSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}; settings: {sorted(known)}")
    return ProjectSettings(**values).check()


def load_settings(store: Any) -> ProjectSettings:
    """The project's settings (defaults for anything never set)."""
    return parse_settings(store.raw_settings())


def update_settings(store: Any, **changes: Any) -> ProjectSettings:
    """Change some settings (checked first: a bad value changes nothing); returns them all."""
    merged = {**load_settings(store).as_dict(),
              **{k: v for k, v in changes.items() if v is not None}}
    settings = parse_settings(merged)
    store.save_settings(settings.as_dict())
    return settings
