"""Experiment runner: reproduce the papers' protocols with seeds, tables and plots."""

from medactive.experiment.config import ExperimentConfig, load_config, parse_config
from medactive.experiment.report import summarize, write_report
from medactive.experiment.runner import Runner, budget_schedule, run_experiment

__all__ = [
    "ExperimentConfig",
    "Runner",
    "budget_schedule",
    "load_config",
    "parse_config",
    "run_experiment",
    "summarize",
    "write_report",
]
