"""`coinpilot force-exit SYMBOL`: sell one position at the last closed candle's close."""

from coinpilot.commands.control import force_exit_arguments as add_arguments
from coinpilot.commands.control import force_exit_main as main

HELP = "sell one open position now at the last closed price"
__all__ = ["HELP", "add_arguments", "main"]
