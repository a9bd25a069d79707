"""CLI subcommands. Each module defines add_arguments(parser) and main(args, settings).

The table holds each command's module and one-line help, so ``coinpilot --help`` lists
them without importing any; only the command that runs is imported. A plain module path
(no help text) also works: the module's HELP is then read by importing it.
"""

# Order here is the order `coinpilot --help` lists them.
COMMAND_MODULES: dict[str, str | tuple[str, str]] = {
    "run": (
        "coinpilot.commands.run",
        "run the daemon (collector, bot loop, jobs, notifications, HTTP)",
    ),
    "migrate": ("coinpilot.commands.migrate", "apply pending database migrations"),
    "check-config": (
        "coinpilot.commands.check_config",
        "validate the configuration and print it with secrets masked",
    ),
    "status": (
        "coinpilot.commands.status",
        "print each symbol's price, regime, position and last decision, and the account",
    ),
    "verify-ledger": (
        "coinpilot.commands.verify_ledger",
        "check the paper ledger invariant (exit 1 on a violation)",
    ),
    "pause": (
        "coinpilot.commands.pause",
        "pause new entries (exits keep running); a running daemon honours it within a cycle",
    ),
    "resume": ("coinpilot.commands.resume", "resume new entries after `coinpilot pause`"),
    "force-exit": (
        "coinpilot.commands.force_exit",
        "sell one open position now at the last closed price",
    ),
    "reset-account": (
        "coinpilot.commands.reset_account",
        "close every paper position without a trade and start again at the initial balance",
    ),
    "ai-report": (
        "coinpilot.commands.ai_report",
        "compare approved and rejected AI candidates under the exit rules, with AI cost",
    ),
    "ai-review": (
        "coinpilot.commands.ai_review",
        "ask the AI for one entry review of a symbol now (records nothing)",
    ),
    "job": (
        "coinpilot.commands.job",
        "run one scheduled job now (regime, volatility or report)",
    ),
    "report": (
        "coinpilot.commands.report",
        "print the daily report (today in the configured time zone, or --date)",
    ),
    "backfill": (
        "coinpilot.commands.backfill",
        "fill 1-minute candles from Upbit for the last N days or a UTC range",
    ),
    "import-csv": (
        "coinpilot.commands.import_csv",
        "load candle CSV files (symbol,ts_utc,open,high,low,close,volume,value_krw)",
    ),
    "backtest": (
        "coinpilot.commands.backtest",
        "replay history through the live engine and report trades, PnL and drawdown",
    ),
    "optimize": (
        "coinpilot.commands.optimize",
        "walk-forward parameter search on the backtester, with out-of-sample figures",
    ),
    "optimize-worker": (
        "coinpilot.commands.optimize_worker",
        "join a `coinpilot optimize` search in shared storage and run its trials",
    ),
}
