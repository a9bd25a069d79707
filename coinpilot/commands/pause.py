"""`coinpilot pause [--reason TEXT]`: stop new entries (exits keep running)."""

from coinpilot.commands.control import pause_arguments as add_arguments
from coinpilot.commands.control import pause_main as main

HELP = "pause new entries (exits keep running); a running daemon honours it within a cycle"
__all__ = ["HELP", "add_arguments", "main"]
