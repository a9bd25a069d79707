"""`make bench`: run every bench/bench_*.py, print one table, write bench/results.json.

Each module exposes ``run() -> list[dict]`` with keys figure, value, unit and optionally
target and note. Timings live here, never in tests.
"""

from __future__ import annotations

import importlib
import json
import platform
import subprocess
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=HERE,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(selected: list[str]) -> int:
    figures: list[dict[str, object]] = []
    failed = 0
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem
        if selected and not any(s in name for s in selected):
            continue
        print(f"# {name}", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            for fig in module.run():
                figures.append({"module": name, **fig})
        except Exception:
            failed += 1
            traceback.print_exc()
    machine = f"{platform.machine()} {platform.processor() or ''} python{platform.python_version()}"
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    commit = _commit()
    width = max((len(str(f["figure"])) for f in figures), default=10)
    print(f"{'figure':<{width}}  {'value':>14}  unit          target")
    for f in figures:
        value = f["value"]
        shown = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
        print(f"{f['figure']!s:<{width}}  {shown:>14}  {f['unit']!s:<12}  {f.get('target', '')}")
    out = {"machine": machine.strip(), "date": stamp, "commit": commit, "figures": figures}
    (HERE / "results.json").write_text(json.dumps(out, indent=2))
    print(f"\nwritten bench/results.json ({len(figures)} figures, commit {commit})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
