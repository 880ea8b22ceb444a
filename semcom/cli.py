"""The ``semcom`` console script: one subcommand per module of :mod:`semcom.commands`.

User mistakes (unknown options, invalid values) end with exit status 2 and one line on stderr,
never a traceback; :class:`channels.errors.ConfigError` raised by a command counts as such (so
does an output folder in use by another run).

Ctrl-C (``SIGINT``), ``SIGTERM`` and ``SIGHUP`` stop a command cleanly
(:func:`semcom.sweep.signals.shutdown_on_signals`): its worker processes are ended, what was
finished is kept, one line ``semcom CMD: interrupted (SIGTERM)`` goes to stderr and the exit
status is ``128 + signal`` (130 for Ctrl-C, 143 for ``SIGTERM``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from channels.errors import ConfigError

COMMANDS = ("run", "check", "plot", "ber", "solve", "methods", "train_policy")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, like argparse but shorter
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every subcommand attached.

    Given the command line ``argv``, only the subcommand it names gets its options: some
    commands' options name choices whose modules load torch, SciPy or Numba, which a
    ``semcom --version`` or a ``semcom plot`` should not wait for. Without ``argv`` every
    subcommand gets its options.
    """
    parser = _Parser(prog="semcom", description="Semantic-communication link simulator.")
    from semcom import __version__

    parser.add_argument("--version", action="version", version=f"semcom {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    named = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for name in COMMANDS:
        module = importlib.import_module(f"semcom.commands.{name}")
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        if named is None or named == module.NAME:
            module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run, _prog=f"semcom {module.NAME}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    for stream in (sys.stdout, sys.stderr):  # a name the terminal cannot show is escaped
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    from semcom.sweep.signals import exit_status, shutdown_on_signals

    with shutdown_on_signals():
        try:
            return int(args._run(args) or 0)
        except ConfigError as err:
            for problem in getattr(err, "problems", None) or [str(err)]:
                print(f"{args._prog}: error: {problem}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM, SIGHUP: cleaned up on the way here
            print(f"{args._prog}: interrupted ({str(err) or 'SIGINT'})", file=sys.stderr)
            return exit_status(err)
        except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly, like cat
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0


if __name__ == "__main__":
    sys.exit(main())
