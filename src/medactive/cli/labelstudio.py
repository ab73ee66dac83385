"""``medactive labelstudio serve``: the project as a Label Studio ML backend.

Thin: :mod:`medactive.annotate.labelstudio` does the work (docs/integrations.md, "Label Studio").
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from medactive.annotate.exports import LABEL_STUDIO_PREFIX

app = typer.Typer(no_args_is_help=True)


@app.command("serve")
def serve(
    project_dir: Path = typer.Argument(..., help="project directory"),
    port: int = typer.Option(9090, "--port", help="TCP port (0: any free port)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind (default: this "
                             "machine only)"),
    token: str | None = typer.Option(
        None, "--token", envvar="MEDACTIVE_TOKEN",
        help="shared secret (>= 16 characters) Label Studio sends as the Basic Authentication "
             "password; prefer the MEDACTIVE_TOKEN environment variable (a --token shows in "
             "`ps`)"),
    budget: int | None = typer.Option(
        None, "--budget", "-b", help="images per round started from Label Studio (default: the "
                                     "previous round's)"),
    auto_round: bool = typer.Option(
        True, "--auto-round/--no-auto-round",
        help="start the next round when every image of the latest one has an answer"),
    label_studio_url: str | None = typer.Option(
        None, "--label-studio-url", envvar="LABEL_STUDIO_URL",
        help="Label Studio's address, for the backend's own calls (new rounds' scores, "
             "catching up); the API key is read from LABEL_STUDIO_API_KEY"),
    image_prefix: str = typer.Option(
        LABEL_STUDIO_PREFIX, "--image-prefix",
        help="the --image-prefix the tasks were exported with"),
) -> None:
    """Serve the project as a Label Studio ML backend: predictions ordered by medactive's
    rank, answers recorded from Label Studio, rounds started when answered."""
    from medactive.annotate.labelstudio.backend import BackendConfig
    from medactive.annotate.labelstudio.serve import serve_backend

    config = BackendConfig(token=token or "", host=host, port=port, budget=budget,
                           auto_next_round=auto_round, label_studio_url=label_studio_url,
                           label_studio_key=os.environ.get("LABEL_STUDIO_API_KEY") or None,
                           image_prefix=image_prefix)

    def announce(url: str) -> None:
        typer.echo(f"Label Studio ML backend for {project_dir} at {url}  (Ctrl-C stops; every "
                   "answer is already saved)")
        typer.echo("  Label Studio: Settings > Model > Connect Model: Backend URL "
                   f"{url.split()[0]}, Basic Authentication on, any user name, password = "
                   "the token")

    serve_backend(project_dir, config, announce=announce)
