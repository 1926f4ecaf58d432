"""The project's answers outside the report's pages: the README's headlines block, and a rebuild of the landing
page and results.md's summary from the records alone.

    python -m cifar_utils.report.headlines                  # rebuild outputs/index.html, results.md's summary, README's block
    python -m cifar_utils.report.headlines --check          # exit 1 when README's block is not what the records say

The README's block lies between HEADLINES_BEGIN and HEADLINES_END; only the report (runner.run_report, into
the project's outputs/) and this command rewrite it, and tests/report/test_readme.py fails when it disagrees with
the committed records. Nothing here runs a notebook or trains: it reads outputs/runs/, the experiments'
run records and the findings notebooks 04-07 wrote (analysis/headline_records.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..analysis import experiments as E
from ..errors import CifarError
from ..paths import project_dir
from ..runs import atomic, run_files
from . import landing
from .rendering import INDEX
from .results_page import SUMMARY_BEGIN, SUMMARY_END, summary_block

HEADLINES_BEGIN, HEADLINES_END = "<!-- headlines:begin -->", "<!-- headlines:end -->"
README = "README.md"
RESULTS = "results.md"
# What the README shows of the summary, in this order: the answers a newcomer reads first, then their provenance.
README_KEYS = ("best", "baseline", "04", "05", "07", "provenance")


def run_folders(out_dir) -> list[Path]:
    """Every run record the report summarises: the output folder's runs, then the experiments' store."""
    out_dir = Path(out_dir)
    return [*run_files.list_runs(out_dir / "runs"), *run_files.list_runs(E.runs_store(out_dir))]


def summary(out_dir) -> list[landing.Headline]:
    """The executive summary of `out_dir` from its records alone, linked where the pages exist."""
    found = landing.executive_summary(landing.configurations(run_folders(out_dir)), findings_dir=out_dir)
    return landing.with_existing_links(found, [out_dir])


def readme_lines(out_dir, readme_dir=None) -> list[str]:
    """The README's headlines: the summary's answers in README_KEYS order, links relative to `readme_dir`
    (default: the project)."""
    prefix = os.path.relpath(Path(out_dir).resolve(), Path(readme_dir or project_dir()).resolve())
    by_key = {h.key: h for h in summary(out_dir)}
    return landing.markdown_lines([by_key[k] for k in README_KEYS if k in by_key], prefix=f"{prefix}/")


def replace_block(text: str, lines: list[str], begin: str, end: str, where: str = "the file") -> str:
    """`text` with the lines between the `begin` and `end` markers replaced by `lines` (markers kept)."""
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise CifarError(f"{where} needs one {begin} line and, after it, one {end} line around the generated block")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + "\n".join([begin, *lines, end]) + tail


def block(text: str, begin: str = HEADLINES_BEGIN, end: str = HEADLINES_END) -> list[str]:
    """The lines between the markers."""
    if begin not in text or end not in text:
        raise CifarError(f"no {begin} ... {end} block found")
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n").splitlines()


def write_readme(readme, out_dir) -> bool:
    """Rewrite README's headlines block from `out_dir`'s records; True when it changed."""
    readme = Path(readme)
    old = readme.read_text(encoding="utf-8")
    new = replace_block(old, readme_lines(out_dir, readme.parent), HEADLINES_BEGIN, HEADLINES_END, str(readme))
    if new != old:
        atomic.write_text(readme, new)
    return new != old


def _results_with_summary(text: str, lines: list[str]) -> str:
    if SUMMARY_BEGIN in text:
        return replace_block(text, lines[1:-1], SUMMARY_BEGIN, SUMMARY_END, RESULTS)
    # A results.md written before the markers: its summary is the paragraph under the title.
    title, sep, rest = text.partition("\n\n")
    if not title.startswith("# ") or not sep:
        raise CifarError(f"{RESULTS} does not start with its title and summary; run the report again")
    _, _, after = rest.partition("\n\n")
    return f"{title}\n\n" + "\n".join(lines) + "\n\n" + after


def refresh(out_dir, readme=None) -> list[Path]:
    """Rebuild `out_dir`'s index.html, the summary at the top of its results.md, and (with `readme`) the README's
    block, from the records alone; the reports and figures listed are those already there. Returns what changed."""
    out_dir = Path(out_dir)
    found = summary(out_dir)
    notebooks = sorted(
        f"{p.name[: -len('.html')]}.ipynb"
        for p in (out_dir / "reports").glob("*.html")
        if not p.name.endswith(".code.html")
    )
    changed = []
    old_index = (out_dir / INDEX).read_text(encoding="utf-8") if (out_dir / INDEX).is_file() else None
    if landing.index_html(found, notebooks, [out_dir]) != old_index:
        changed.append(landing.write_index(out_dir, found, notebooks))
    results = out_dir / RESULTS
    if results.is_file():
        old = results.read_text(encoding="utf-8")
        new = _results_with_summary(old, summary_block(found))
        if new != old:
            atomic.write_text(results, new)
            changed.append(results)
    if readme is not None and write_readme(readme, out_dir):
        changed.append(Path(readme))
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cifar_utils.report.headlines", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", default=str(project_dir() / "outputs"), help="the report's output folder")
    parser.add_argument("--readme", default=str(project_dir() / README), help="the README whose block to rewrite")
    parser.add_argument("--no-readme", action="store_true", help="leave the README as it is")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if README's block is stale")
    args = parser.parse_args(argv)
    try:
        if args.check:
            readme = Path(args.readme)
            wanted = readme_lines(args.out, readme.parent)
            if block(readme.read_text(encoding="utf-8")) != wanted:
                print(f"{readme}: the headlines block differs from the records; expected:", *wanted, sep="\n")
                return 1
            print(f"{readme}: the headlines block matches the records")
            return 0
        changed = refresh(args.out, None if args.no_readme else args.readme)
    except CifarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("rewrote " + ", ".join(map(str, changed)) if changed else "nothing changed: every page matches the records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
