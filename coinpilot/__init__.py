"""CoinPilot: a paper-trading daemon for Upbit KRW markets."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("coinpilot")
except PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"
