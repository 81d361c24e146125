"""The `mgr` command: one small module per subcommand, heavy imports inside commands."""

from __future__ import annotations

import typer

from mgr_cli import __version__
from mgr_cli.cli.analyze import ami_cmd
from mgr_cli.cli.demo import demo_cmd
from mgr_cli.cli.embed import embed_cmd
from mgr_cli.cli.embeddings import app as embeddings_app
from mgr_cli.cli.evaluate import compare_cmd, evaluate_cmd, table_cmd
from mgr_cli.cli.fuse import fuse_cmd
from mgr_cli.cli.ids import app as ids_app
from mgr_cli.cli.inspect import inspect_cmd
from mgr_cli.cli.items import app as items_app
from mgr_cli.cli.popular import oracle_cmd, popular_cmd, random_cmd
from mgr_cli.cli.prepare import prepare_cmd
from mgr_cli.cli.quantize import quantize_cmd
from mgr_cli.cli.recommend import recommend_cmd
from mgr_cli.cli.sasrec import app as sasrec_app
from mgr_cli.cli.server import server_cmd
from mgr_cli.cli.tokenize import tokenize_cmd
from mgr_cli.cli.train import align_cmd, train_cmd

app = typer.Typer(
    name="mgr",
    help="Multimodal generative recommendation (MGR-LF++): composable stages over "
    "versioned artifacts. Set MGR_DEBUG=1 for tracebacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"mgr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Multimodal generative recommendation toolkit."""


app.command("prepare")(prepare_cmd)
app.command("inspect")(inspect_cmd)
app.command("demo-data")(demo_cmd)
app.command("demo-oracle")(oracle_cmd)
app.command("embed")(embed_cmd)
app.command("fuse")(fuse_cmd)
app.command("quantize")(quantize_cmd)
app.command("analyze-ami")(ami_cmd)
app.command("tokenize")(tokenize_cmd)
app.command("align")(align_cmd)
app.command("train")(train_cmd)
app.command("evaluate")(evaluate_cmd)
app.command("compare")(compare_cmd)
app.command("table")(table_cmd)
app.command("recommend")(recommend_cmd)
app.command("popular")(popular_cmd)
app.command("random")(random_cmd)
app.command("server")(server_cmd)
app.add_typer(sasrec_app, name="sasrec")
app.add_typer(embeddings_app, name="embeddings")
app.add_typer(ids_app, name="ids")
app.add_typer(items_app, name="items")


def main() -> None:
    app(prog_name="mgr")
