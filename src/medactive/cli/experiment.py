"""``medactive run``, ``report`` and ``demo``: the experiment runner."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markdown import Markdown

from medactive.errors import ConfigError

PRESETS = Path(__file__).resolve().parents[1] / "presets"


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

    verdict = default_verdict(RunData.load(run_dir))
    if not verdict.comparisons:
        return
    console.print("\n[bold]Do the defaults beat random here?[/bold]")
    for c in verdict.comparisons:
        mark = "[green]yes[/green]" if c.holds else "[red]NO[/red]"
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
        """BloodMNIST end to end: contrastive pre-training (cached); random, HaCon and the default
        cold start (TypiClust); then random, entropy, AEIG and the default acquisition; 3 repeats,
        head mode; ends by saying whether each default beat random."""
        from medactive.experiment import load_config, run_experiment

        cfg = load_config(PRESETS / "demo.toml")
        console = Console()
        console.print("[bold]medactive demo[/bold]: BloodMNIST, medactive's defaults vs random vs "
                      "the papers' methods")
        start = time.perf_counter()
        run_experiment(cfg, out, progress=not quiet)
        _print_summary(out / "summary.md", console)
        console.print(f"\nreport: [bold]{out / 'summary.md'}[/bold]; plots: "
                      f"{', '.join(p.name for p in sorted(out.glob('*.png')))} "
                      f"— {time.perf_counter() - start:.0f} s")
