"""The `dlcfn` command line: a thin layer that parses, calls one library function per command and
renders the result. Commands live in dlcfn/commands/ and are imported only when run, so that
`dlcfn --help` answers without importing boto3, troposphere or mxnet.

DlcfnError becomes a one-line message and its exit code; no traceback unless --debug.
"""

from __future__ import annotations

import importlib
import sys

import click

from dlcfn.errors import DlcfnError, ExitCode
from dlcfn.spec.schema import did_you_mean

# name -> ("module:attribute", short help). Help text is here so that listing commands imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "template": ("dlcfn.commands.template:template", "Render the cluster CloudFormation template."),
    "create-stack": ("dlcfn.commands.stack:create_stack", "Create a cluster (CloudFormation stack) and wait until it is ready."),
    "status": ("dlcfn.commands.stack:status", "Show a cluster's state, outputs and nodes."),
    "list": ("dlcfn.commands.stack:list_clusters", "List the dlcfn clusters in the region."),
    "update-stack": ("dlcfn.commands.stack:update_stack", "Resize or reconfigure a cluster."),
    "delete-stack": ("dlcfn.commands.stack:delete_stack", "Delete a cluster and everything it created."),
    "ssh": ("dlcfn.commands.stack:ssh", "SSH to the master or, through it, to any node."),
    "submit": ("dlcfn.commands.job:submit", "Run a training job (job.yaml) on a cluster or a hosts file."),
    "jobs": ("dlcfn.commands.job:jobs", "List submitted jobs with state and duration."),
    "logs": ("dlcfn.commands.job:logs", "Show the logs of a job."),
    "cancel": ("dlcfn.commands.job:cancel", "Stop a running job on every host."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[override]
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            raise click.UsageError(f"no command {name!r}{did_you_mean(name, COMMANDS)}; see `dlcfn --help`", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="dlcfn", prog_name="dlcfn")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """dlcfn: a deep-learning cluster on AWS (CloudFormation) and MXNet distributed training on it."""
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn DlcfnError into a one-line message and exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    # paramiko imports `invoke` only to run the `Match exec` lines of ssh_config files, which
    # dlcfn never reads: blocking it (paramiko catches the ImportError) saves ~70 ms of every
    # command that opens an SSH connection.
    sys.modules.setdefault("invoke", None)  # type: ignore[assignment]
    try:
        rv = cli.main(args=argv, standalone_mode=False)  # returns the exit code on --help / ctx.exit
    except DlcfnError as e:
        if debug:
            raise
        click.echo(f"dlcfn: error: {e.render()}", err=True)
        sys.exit(int(e.exit_code))
    except click.exceptions.Abort:
        click.echo("dlcfn: aborted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except click.ClickException as e:
        if debug:
            raise
        e.show()
        sys.exit(int(ExitCode.BAD_INPUT) if e.exit_code == 2 else e.exit_code)
    except KeyboardInterrupt:
        click.echo("dlcfn: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(rv if isinstance(rv, int) else 0)
