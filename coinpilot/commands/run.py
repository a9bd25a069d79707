"""`coinpilot run`: the daemon."""

from __future__ import annotations

import argparse
import asyncio

from coinpilot.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def main(args: argparse.Namespace, settings: Settings) -> int:
    from coinpilot import wiring  # noqa: F401  (registers every service)
    from coinpilot.app import serve

    return asyncio.run(serve(settings))
