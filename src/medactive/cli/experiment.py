"""``medactive run``, ``report`` and ``demo``: the experiment runner."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markdown import Markdown

from medactive.errors import ConfigError

if TYPE_CHECKING:
    from medactive.experiment.verdict import Verdict

PRESETS = Path(__file__).resolve().parents[1] / "presets"
# `make demo`: BloodMNIST's training split as the pool, its test split as the test set; rounds of
# 20, 20, 40 and 80 labels (2.5 to 10 per class: the regime where picking matters most and a
# clinic decides whether to trust the tool), 10 paired repeats: at these budgets a paired
# difference has a standard error of 0.01-0.02 AUC, and 5 repeats could not tell most rounds
# from random (a 5-repeat demo measured +0.042 ± 0.040 at 20 labels).
DEMO_BUDGETS = (20, 20, 40, 80)
DEMO_REPEATS = 10


def resolve_config_path(config: str) -> Path:
    """A path to a TOML file, or the name of a bundled preset (``aeig-protocol``, ``demo``...)."""
    path = Path(config)
    if path.is_file():
        return path
    preset = PRESETS / f"{config.removesuffix('.toml')}.toml"
    if preset.is_file():
        return preset
    known = ", ".join(sorted(p.stem for p in PRESETS.glob("*.toml")))
    raise ConfigError(f"config file not found: {config} (bundled presets: {known})")


def _print_summary(summary: Path, console: Console) -> None:
    text = summary.read_text()
    cut = text.find("## Plots")
    console.print(Markdown(text[:cut] if cut >= 0 else text))
    _print_verdict(summary.parent, console)


def _print_verdict(run_dir: Path, console: Console) -> None:
    """The defaults-against-random answer, last, where the eye lands after a long run."""
    from medactive.experiment.results import RunData
    from medactive.experiment.verdict import default_verdict

    _print_comparisons(default_verdict(RunData.load(run_dir)), console)


def _print_comparisons(verdict: Verdict, console: Console) -> None:
    """One yes/NO line per comparison, under the question the user asked (nothing when the run
    holds no default beside random)."""
    if not verdict.comparisons:
        return
    console.print("\n[bold]Do the defaults beat random here?[/bold]")
    for c in verdict.comparisons:
        mark = {"yes": "[green]yes[/green]", "tie": "[yellow]tie[/yellow]",
                "NO": "[red]NO[/red]"}[c.mark]
        console.print(f"  {mark}  {c.line()}", markup=True, highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``run``, ``report`` and ``demo`` to ``app``."""

    @app.command("run")
    def run(
        config: str = typer.Argument(..., help="TOML config file or bundled preset name"),
        out: Path | None = typer.Option(None, "--out", help="output folder (default runs/<name>)"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
        ray: str | None = typer.Option(
            None, "--ray", help="feature extraction and scoring on Ray: local | auto | "
            "ray://HOST:PORT (overrides [run] ray)"),
    ) -> None:
        """Run (or resume) an experiment; re-running the same command skips finished cells."""
        from medactive.experiment import load_config, run_experiment

        cfg = load_config(resolve_config_path(config))
        if ray is not None:
            from medactive.models.cluster import check_address

            cfg = cfg.model_copy(update={"run": cfg.run.model_copy(
                update={"ray": check_address(ray)})})
        out_dir = out or Path("runs") / cfg.name
        start = time.perf_counter()
        run_experiment(cfg, out_dir, progress=not quiet)
        console = Console()
        _print_summary(out_dir / "summary.md", console)
        console.print(f"\nresults in [bold]{out_dir}[/bold] (summary.md, results.jsonl, plots) "
                      f"— {time.perf_counter() - start:.0f} s")

    @app.command("report")
    def report(run_dir: Path = typer.Argument(..., help="folder written by `medactive run`")) -> None:
        """Regenerate summary.md and the plots from results.jsonl."""
        from medactive.experiment import write_report

        if not (run_dir / "results.jsonl").is_file():
            raise ConfigError(f"{run_dir}: no results.jsonl (is this a run folder?)")
        summary = write_report(run_dir)
        typer.echo(f"wrote {summary}")

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("runs/demo"), "--out", help="output folder"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
    ) -> None:
        """BloodMNIST end to end, as a clinic would meet it: the back-test of the product's own
        loop (`medactive project backtest bloodmnist`): medactive's defaults vs labelling at
        random vs the papers' methods (HaCon, then AEIG), test AUC per expert label spent,
        paired by repeat; ends by saying, round by round, whether the defaults beat random."""
        from medactive.experiment.backtest import DatasetSource, dataset_backtest
        from medactive.rounds.backtest import DEFAULTS, PAPERS, RANDOM, BacktestPlan

        console = Console()
        console.print("[bold]medactive demo[/bold]: the product's loop on BloodMNIST, "
                      "medactive's defaults vs random vs the papers' methods")
        start = time.perf_counter()
        summary, verdict = dataset_backtest(DatasetSource("bloodmnist"), BacktestPlan(
            DEMO_BUDGETS, DEMO_REPEATS, 0, (DEFAULTS, RANDOM, PAPERS)), out, progress=not quiet)
        print_backtest(summary, verdict, console)
        console.print(f"\nreport: [bold]{summary}[/bold]; plot: {out / 'learning_curve.png'} "
                      f"— {time.perf_counter() - start:.0f} s")


def print_backtest(summary: Path, verdict: Verdict, console: Console | None = None) -> None:
    """A back-test's summary (up to its plot) and its verdict, last, where the eye lands."""
    console = console or Console()
    text = summary.read_text()
    cut = text.find("![learning curve]")
    console.print(Markdown(text[:cut] if cut >= 0 else text))
    _print_comparisons(verdict, console)
    console.print(f"\nlearning curve: {summary.parent / 'learning_curve.png'}")
