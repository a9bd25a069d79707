"""`make mutation`'s score per file, from the results mutmut leaves under mutants/.

score = killed (or timed out) / (all mutants − those listed as equivalent), where a
mutant no test reaches counts as surviving. Equivalent mutants are listed with the reason
in tests/mutation_equivalent.txt (``name  reason``, one a line); survivors that an input
could tell apart, but only one the program never lets through, are listed in
tests/mutation_survivors.txt and still count as survivors. Exits 1 when a file is below the
bar, or when a mutant on either list no longer survives (the lists must stay true).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BAR = 90.0
KILLED = {1, 3, 36, -24, 24, 152, 255, 37}  # failed tests, timeouts, type-check catches
SURVIVED = {0, 5, 33}  # passing tests, or no test reaching the mutant at all


def equivalent(name: str = "mutation_equivalent.txt") -> dict[str, str]:
    path = ROOT / "tests" / name
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, why = line.strip().partition(" ")
            out[name] = why.strip()
    return out


def main() -> int:
    listed = equivalent()
    known = equivalent("mutation_survivors.txt")  # tolerated survivors, still counted
    metas = sorted((ROOT / "mutants").rglob("*.py.meta"))
    if not metas:
        print("no mutmut results under mutants/: run `make mutation`", file=sys.stderr)
        return 2
    failed = False
    print(f"{'file':<36} {'mutants':>7} {'killed':>6} {'surv.':>5} {'equiv.':>6} {'score':>7}")
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        rel = meta.relative_to(ROOT / "mutants").as_posix().removesuffix(".meta")
        count: Counter[str] = Counter()
        for name, code in codes.items():
            if name in listed:
                count["equivalent"] += 1
                if code in KILLED:
                    print(f"  listed as equivalent but killed: {name}")
                    failed = True
            elif code in KILLED:
                count["killed"] += 1
                if name in known:
                    print(f"  listed as a known survivor but killed: {name}")
                    failed = True
            elif code in SURVIVED:
                count["survived"] += 1
                print(f"  {'known survivor' if name in known else 'survivor'}: {name}")
            else:
                count["unchecked"] += 1
        judged = count["killed"] + count["survived"]
        score = 100.0 * count["killed"] / judged if judged else 100.0
        note = f"  ({count['unchecked']} not run)" if count["unchecked"] else ""
        print(f"{rel:<36} {len(codes):>7} {count['killed']:>6} {count['survived']:>5} "
              f"{count['equivalent']:>6} {score:>6.1f}%{note}")  # fmt: skip
        failed |= score < BAR or bool(count["unchecked"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
