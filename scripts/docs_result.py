"""Put a command's Markdown output into the documentation as it came out: the named sections of a report (and the
paragraph naming what computed it) under ``docs/results/NAME.md``, which pages include. A page then shows what the
command printed, with its commit and machine, never a copy edited by hand.

    python scripts/docs_result.py make-run outputs/report/report.md --command "make run" --section Findings
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def sections(text: str, names: list[str]) -> list[str]:
    """The paragraph that names what computed the results, then each named ``##`` section (heading dropped)."""
    parts = re.split(r"^## ", text, flags=re.M)
    provenance = [p for p in parts[0].split("\n\n") if "computed on" in p]
    found = {part.split("\n", 1)[0].strip(): part.split("\n", 1)[1].strip() for part in parts[1:]}
    missing = [name for name in names if name not in found]
    if missing:
        raise SystemExit(f"error: no section {missing[0]!r} in the report (sections: {', '.join(found)})")
    return [p.strip() for p in provenance] + [found[name] for name in names]


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("name", help="the result's name: docs/results/NAME.md")
    cli.add_argument("report", type=Path, help="the Markdown file the command wrote")
    cli.add_argument("--command", required=True, help="the command that wrote it, as a reader would type it")
    cli.add_argument("--section", action="append", default=[], help="a ## section to take (repeatable)")
    args = cli.parse_args()
    if not args.report.is_file():
        sys.exit(f"error: report not found: {args.report}")
    body = sections(args.report.read_text(), args.section)
    header = f"Output of `{args.command}` ({', '.join(args.section)} of `{args.report.name}`), as it printed it:"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text("\n\n".join([header, *body]) + "\n")


if __name__ == "__main__":
    main()
