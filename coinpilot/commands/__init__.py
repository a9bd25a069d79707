"""CLI subcommands. Each module defines HELP, add_arguments(parser) and main(args, settings)."""

# Order here is the order `coinpilot --help` lists them.
COMMAND_MODULES: dict[str, str] = {
    "run": "coinpilot.commands.run",
    "migrate": "coinpilot.commands.migrate",
    "check-config": "coinpilot.commands.check_config",
    "status": "coinpilot.commands.status",
    "verify-ledger": "coinpilot.commands.verify_ledger",
    "ai-report": "coinpilot.commands.ai_report",
    "ai-review": "coinpilot.commands.ai_review",
    "job": "coinpilot.commands.job",
    "report": "coinpilot.commands.report",
    "backfill": "coinpilot.commands.backfill",
    "import-csv": "coinpilot.commands.import_csv",
    "backtest": "coinpilot.commands.backtest",
    "optimize": "coinpilot.commands.optimize",
    "optimize-worker": "coinpilot.commands.optimize_worker",
}
