"""`coinpilot resume`: allow new entries again."""

from coinpilot.commands.control import no_arguments as add_arguments
from coinpilot.commands.control import resume_main as main

HELP = "resume new entries after `coinpilot pause`"
__all__ = ["HELP", "add_arguments", "main"]
