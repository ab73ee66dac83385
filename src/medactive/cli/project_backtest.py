"""``medactive project backtest``: the product's loop replayed on images with known labels (a
project's own answers, a labelled folder CSV or a MedMNIST ``.npz``), through the round engine
(:mod:`medactive.rounds.backtest`); registered on the ``project`` command group."""

from __future__ import annotations

from pathlib import Path

import typer

from medactive.defaults import DEFAULT_ENCODER
from medactive.errors import ConfigError


def _budgets(budgets: str | None, budget: int | None, rounds: int) -> tuple[int, ...]:
    """``--budgets 16,16,32`` or ``--budget N --rounds R``: the per-round budgets."""
    if budgets is not None:
        try:
            values = tuple(int(b) for b in budgets.split(","))
        except ValueError:
            raise ConfigError(f"--budgets must be comma-separated integers, got {budgets!r}") \
                from None
        return values
    if rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {rounds}")
    return (budget or 20,) * rounds


def register(app: typer.Typer) -> None:
    """Add ``backtest`` to the ``project`` command group ``app``."""

    @app.command("backtest")
    def backtest(
        source: str = typer.Argument(..., help="a project directory, a MedMNIST name or .npz, or an "
                                     "image-folder CSV with labels"),
        budgets: str | None = typer.Option(None, "--budgets",
                                           help="labels asked per round, e.g. 16,16,32,64"),
        budget: int | None = typer.Option(None, "--budget", help="labels per round (with --rounds)"),
        rounds: int = typer.Option(4, "--rounds", help="rounds (with --budget)"),
        repeats: int = typer.Option(10, "--repeats", help="paired repeats (10 or more "
                                     "tell a small-budget round from noise)"),
        seed: int = typer.Option(0, "--seed", help="base seed"),
        pipelines: str = typer.Option(
            "defaults,random", "--pipelines",
            help="compared pipelines: defaults, random, papers, or COLDSTART:ACQUISITION"),
        labels: Path | None = typer.Option(
            None, "--labels", help="project: ground truth from this CSV instead of its labels"),
        test_share: float = typer.Option(0.25, "--test-share",
                                         help="share of the labelled images held out for testing "
                                         "(projects and folder CSVs)"),
        validation_mode: str | None = typer.Option(
            None, "--validation-mode", help="crossfit, holdout or none (default: the project's, "
            "else the product's default)"),
        validation_share: float | None = typer.Option(None, "--validation-share",
                                                      help="share of each round drawn at random"),
        long_tail: float | None = typer.Option(None, "--long-tail",
                                               help="datasets: make pool and test long-tailed"),
        limit: int | None = typer.Option(None, "--limit", help="datasets: subsample the pool"),
        pretrain_epochs: int | None = typer.Option(None, "--pretrain-epochs",
                                                   help="MoCo pre-training epochs"),
        encoder: str | None = typer.Option(
            None, "--encoder", help="datasets: moco, imagenet or hf:<model> (default: "
            f"{DEFAULT_ENCODER}); a project uses its own"),
        encoder_weights: Path | None = typer.Option(None, "--encoder-weights",
                                                    help="datasets: local weights of --encoder"),
        out: Path | None = typer.Option(None, "--out", help="output folder "
                                        "(default runs/backtest-<name>)"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
    ) -> None:
        """Replay the product's loop on images with known labels: do medactive's picks beat
        labelling at random on YOUR data? Prints AUC per expert label spent and a verdict."""
        from medactive.rounds import ValidationPolicy
        from medactive.rounds.backtest import BacktestPlan, parse_pipeline

        chosen = tuple(parse_pipeline(p) for p in pipelines.split(",") if p.strip())
        plan_budgets = _budgets(budgets, budget, rounds)
        is_project = (Path(source) / "project.db").is_file()

        def make_plan(policy: ValidationPolicy) -> BacktestPlan:
            if validation_mode is not None or validation_share is not None:
                policy = ValidationPolicy(
                    validation_mode or policy.mode,  # type: ignore[arg-type]
                    policy.share if validation_share is None else validation_share)
            return BacktestPlan(plan_budgets, repeats, seed, chosen, policy.check())

        make_plan(ValidationPolicy()).check(10**12)  # names, budgets, repeats: before any work
        if is_project:
            if encoder is not None or encoder_weights is not None:
                raise ConfigError("a project is back-tested with its own encoder (project init "
                                  "--encoder); --encoder applies to datasets")
            from medactive.annotate.backtest import project_backtest_data
            from medactive.annotate.query import QueryConfig
            from medactive.experiment.backtest import backtest_to_folder

            data, policy = project_backtest_data(source, labels=labels, test_share=test_share,
                                                 seed=seed, progress=not quiet,
                                                 config=QueryConfig(pretrain_epochs=pretrain_epochs))
            out_dir = out or Path("runs") / f"backtest-{data.name}"
            summary, verdict = backtest_to_folder(data, make_plan(policy), out_dir,
                                                  progress=not quiet)
        else:
            if labels is not None:
                raise ConfigError("--labels applies to a project; a dataset brings its own labels")
            from medactive.experiment.backtest import DatasetSource, dataset_backtest

            src = DatasetSource(source, test_share, long_tail, limit, seed)
            out_dir = out or Path("runs") / f"backtest-{Path(source).stem}"
            summary, verdict = dataset_backtest(src, make_plan(ValidationPolicy()), out_dir,
                                                encoder=encoder or DEFAULT_ENCODER,
                                                encoder_weights=encoder_weights,
                                                pretrain_epochs=pretrain_epochs, progress=not quiet)
        from medactive.cli.experiment import print_backtest

        print_backtest(summary, verdict)
