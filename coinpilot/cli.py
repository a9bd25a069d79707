"""`coinpilot` entry point: parse, load the config once, dispatch to a subcommand.

Only the module of the command given is imported (``coinpilot --help`` imports none), so
a short command does not pay for the daemon's libraries.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from coinpilot.commands import COMMAND_MODULES

if TYPE_CHECKING:
    from coinpilot.errors import ConfigError


def _entry(name: str) -> tuple[str, str | None]:
    entry = COMMAND_MODULES[name]
    return (entry, None) if isinstance(entry, str) else entry


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``: its first word that is not an option."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMAND_MODULES else None
    return None


def build_parser(
    argv: Sequence[str] | None = None,
) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The parser, with the arguments of the command in ``argv`` (of every command when
    ``argv`` is None), and the modules it imported for that."""
    from coinpilot import __version__

    parser = argparse.ArgumentParser(prog="coinpilot", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"coinpilot {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = None if argv is None else _chosen(argv)
    modules: dict[str, ModuleType] = {}
    for name in COMMAND_MODULES:
        path, text = _entry(name)
        if argv is None or name == chosen or text is None:
            modules[name] = importlib.import_module(path)
            text = text or modules[name].HELP
        cmd = sub.add_parser(name, help=text, description=text)
        if name not in modules:
            continue
        cmd.add_argument(
            "--config",
            metavar="FILE",
            default=None,
            help="YAML config (default: $COINPILOT_CONFIG, else config/coinpilot.yaml)",
        )
        cmd.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
        )
        modules[name].add_arguments(cmd)
    return parser, modules


VERBOSE_HELP = (
    "log at the configured level on stderr (commands other than run log only warnings and "
    "errors there by default; results always go to stdout)"
)


def config_error(exc: ConfigError) -> int:
    """One line on stderr, exit 2: the message names the field or environment variable."""
    print(f"coinpilot: config error: {' '.join(str(exc).split())}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser, modules = build_parser(words)
    args = parser.parse_args(words)
    from coinpilot.config import load_config
    from coinpilot.errors import ConfigError
    from coinpilot.observability import configure_logging

    try:
        settings = load_config(args.config)
    except ConfigError as exc:
        return config_error(exc)
    if args.command == "run":
        # The daemon's log is its output: on stdout, which journald stores.
        configure_logging(settings.app.log.level, settings.app.log.format)
    else:
        level = settings.app.log.level if args.verbose else "WARNING"
        configure_logging(level, settings.app.log.format, stream=sys.stderr)
    module = modules[args.command]
    try:
        return int(module.main(args, settings))  # type: ignore[attr-defined]
    except ConfigError as exc:
        return config_error(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
