"""`coinpilot` entry point: parse, load the config once, dispatch to a subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from coinpilot.commands import COMMAND_MODULES
from coinpilot.config import load_config
from coinpilot.errors import ConfigError
from coinpilot.observability import configure_logging


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = argparse.ArgumentParser(prog="coinpilot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules: dict[str, ModuleType] = {}
    for name, path in COMMAND_MODULES.items():
        module = importlib.import_module(path)
        modules[name] = module
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        cmd.add_argument(
            "--config",
            metavar="FILE",
            default=None,
            help="YAML config (default: $COINPILOT_CONFIG, else config/coinpilot.yaml)",
        )
        module.add_arguments(cmd)
    return parser, modules


def config_error(exc: ConfigError) -> int:
    """One line on stderr, exit 2: the message names the field or environment variable."""
    print(f"coinpilot: config error: {' '.join(str(exc).split())}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_config(args.config)
    except ConfigError as exc:
        return config_error(exc)
    configure_logging(settings.app.log.level, settings.app.log.format)
    module = modules[args.command]
    try:
        return int(module.main(args, settings))  # type: ignore[attr-defined]
    except ConfigError as exc:
        return config_error(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
