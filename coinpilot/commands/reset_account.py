"""`coinpilot reset-account [--yes]`: start the paper account again (asks to confirm)."""

from coinpilot.commands.control import reset_arguments as add_arguments
from coinpilot.commands.control import reset_main as main

HELP = "close every paper position without a trade and start again at the initial balance"
__all__ = ["HELP", "add_arguments", "main"]
