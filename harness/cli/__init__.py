"""The ``harness`` command: a thin layer that translates arguments and calls the library.

Each sub-command lives in its own module under ``harness.cli`` and is imported only when
it runs, so ``harness plan`` does not pay for scipy or libvirt.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from harness import __version__
from harness.errors import ConfigError, ConfigErrors, HarnessError, environment_fault

# Exit statuses of every command (README "Exit statuses"; `harness --help`)
EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_HELP = """\b
Exit status: 0 every cell met its expectation (or is undecided); 1 a cell failed its
expectation; 2 a mistake in the input (file:line:column: message); 3 the environment or
lab failed (disk full, database or reports folder unwritable, no host usable; the run is
kept and the message says how to continue it); 130 interrupted (resume it)."""

# command name -> (module, attribute, one-line help shown in `harness --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "plan": ("harness.cli.plan", "plan", "Expand a matrix into cells and print them."),
    "classify": ("harness.cli.classify", "classify", "Classify kernel output (dmesg, console)."),
    "domxml": ("harness.cli.domxml", "domxml", "Print the libvirt domain XML of matrix cells."),
    "gc": ("harness.cli.gc", "gc", "Remove domains and overlays left by dead runs."),
    "lab": ("harness.cli.lab", "lab", "Set up and check the local lab on this machine."),
    "run": ("harness.cli.run", "run", "Run a matrix: boot every cell, record, report."),
    "report": ("harness.cli.report", "report", "Write the reports of a recorded run."),
    "compare": ("harness.cli.compare", "compare", "Compare two recorded runs."),
    "bisect": ("harness.cli.bisect", "bisect", "Find the build that made a flaky failure appear."),
    "runs": ("harness.cli.runs", "runs", "List recorded runs: complete or not, and why."),
    "history": ("harness.cli.history", "history", "A matrix over its nights, first bad nights."),
    "baseline": ("harness.cli.baseline", "baseline", "Pin or show the run reports compare with."),
    "digest": ("harness.cli.digest", "digest", "What is new tonight; tell the team."),
    "prune": ("harness.cli.prune", "prune", "Remove old boots' evidence (failing: kept longer)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, short_help = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return _missing(cmd_name, short_help)
        cmd = getattr(module, attr)
        assert isinstance(cmd, click.Command)
        return cmd


def _missing(name: str, short_help: str) -> click.Command:
    @click.command(name=name, help=short_help + " (not available in this build)")
    def _cmd() -> None:
        raise click.ClickException(f"'harness {name}' is not available in this build")

    return _cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXIT_HELP)
@click.version_option(__version__, prog_name="harness")
def cli() -> None:
    """vm-boot-harness: boot aarch64 guests over a matrix and score every boot."""


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: user errors print as ``file:line:col: message``, no traceback."""
    try:
        rv = cli.main(args=argv, prog_name="harness", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        located = exc.where is not None or isinstance(exc, ConfigErrors)
        click.echo(str(exc) if located else f"error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    except HarnessError as exc:  # the lab or this machine failed, not the input
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ENVIRONMENT)
    except OSError as exc:  # disk full, read-only or unwritable folder, ...
        click.echo(f"error: {environment_fault(exc)}", err=True)
        sys.exit(EXIT_ENVIRONMENT)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
    return rv
