"""`make bench`: run every `bench/bench_<name>.py` and write one machine-readable report.

Each module exposes `run(quick: bool = False) -> list[dict]`; a record carries at least
`name`, `value` (the median of several runs), `unit`, and where it applies `runs`,
`target`, `baseline` (measured in the same run) and `notes`. The report goes to
`bench/results/<UTC time>.json` and `bench/results/latest.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated bench names (e.g. simulator,generate)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args(argv)

    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - set(names)
        if unknown:
            print(f"error: unknown bench {', '.join(sorted(unknown))}; have {', '.join(names)}",
                  file=sys.stderr)
            return 1
        names = [n for n in names if n in wanted]

    report = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "quick": args.quick,
        "results": [],
        "errors": [],
    }
    for name in names:
        print(f"== bench {name}", flush=True)
        t0 = time.monotonic()
        try:
            records = importlib.import_module(f"bench.bench_{name}").run(quick=args.quick)
        except Exception as e:  # noqa: BLE001 - report it and go on with the others
            traceback.print_exc()
            report["errors"].append({"bench": name, "error": f"{type(e).__name__}: {e}"})
            continue
        for r in records:
            r.setdefault("bench", name)
            report["results"].append(r)
            target = f" (target {r['target']})" if "target" in r else ""
            print(f"   {r['name']}: {r['value']} {r.get('unit', '')}{target}", flush=True)
        print(f"   ({time.monotonic() - t0:.0f}s)", flush=True)

    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(report, indent=2)
    (out_dir / f"{stamp}.json").write_text(text)
    (out_dir / "latest.json").write_text(text)
    print(f"report: {out_dir / f'{stamp}.json'}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
