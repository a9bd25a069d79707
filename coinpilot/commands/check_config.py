"""`coinpilot check-config`: validate and print the effective configuration, secrets masked."""

from __future__ import annotations

import argparse

import yaml

from coinpilot.config import Settings, redacted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def main(args: argparse.Namespace, settings: Settings) -> int:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: faster
    text = yaml.dump(redacted(settings), Dumper=dumper, sort_keys=False, allow_unicode=True)
    print(text, end="")
    print("config ok")
    return 0
