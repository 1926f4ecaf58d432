"""Every local link and image in the committed report resolves: each markdown and HTML file under outputs/ (the
committed ones, `git ls-files`) and README.md, read relative to the file that holds it, as GitHub and a browser
read it. And results.md, which embeds the experiments' sections, rebases their links to its own folder."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from cifar_utils.analysis.tables import rebase_links

PROJECT = Path(__file__).resolve().parents[2]

_FENCED = re.compile(r"^```.*?^```", flags=re.S | re.M)  # code blocks: what they show is not a link
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_MARKDOWN = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML = re.compile(r"""\b(?:src|href)\s*=\s*(?:"([^"]*)"|'([^']*)')""", flags=re.I)
_ELSEWHERE = ("http://", "https://", "mailto:", "data:", "javascript:", "//")


def _committed() -> list[str]:
    """The committed markdown and HTML under outputs/, and README.md."""
    listed = subprocess.run(
        ["git", "ls-files", "outputs", "README.md"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [f for f in listed if f.endswith((".md", ".html"))]


def local_targets(text: str, html: bool) -> list[str]:
    """The relative link and image targets of a page, without their #anchor or ?query. In an HTML page only its
    attributes count (its text may show markdown, as the code renderings do); in markdown both kinds."""
    found = []
    if not html:
        text = _INLINE_CODE.sub("", _FENCED.sub("", text))
        found += _MARKDOWN.findall(text)
    found += [a or b for a, b in _HTML.findall(text)]
    paths = [unquote(re.split(r"[#?]", t, maxsplit=1)[0]) for t in found if not t.lower().startswith(_ELSEWHERE)]
    return [p for p in paths if p]  # "#anchor" alone: a place in the same page


FILES = _committed()


def test_the_committed_report_is_found():
    assert "README.md" in FILES and "outputs/results.md" in FILES and "outputs/index.html" in FILES


@pytest.mark.parametrize("name", FILES)
def test_every_local_link_resolves(name):
    page = PROJECT / name
    targets = local_targets(page.read_text(encoding="utf-8"), html=name.endswith(".html"))
    broken = sorted({t for t in targets if t.startswith("/") or not (page.parent / t).exists()})
    assert not broken, f"{name} links to {len(broken)} missing file(s), read from {page.parent.name or '.'}/: {broken}"


def test_link_extraction_skips_the_web_anchors_and_code():
    text = (
        "![a](figures/a.png) [b](../b.md#part) [web](https://x.org/y.png) [top](#top) [mail](mailto:a@b.c)\n"
        "`[not](code.md)`\n```\n[nor](block.md)\n```\n<img src=\"c d.png\"> <a href='e.html?x=1'>e</a>"
    )
    assert local_targets(text, html=False) == ["figures/a.png", "../b.md", "c d.png", "e.html"]
    assert local_targets(text, html=True) == ["c d.png", "e.html"]


def test_results_md_rebases_a_sections_links_to_its_own_folder(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "04_x.png").write_bytes(b"")
    section = "![x](../figures/04_x.png) [web](https://x.org) [old](figures/04_x.png)"
    embedded = rebase_links(section, tmp_path / "experiments", tmp_path)
    # The section's own link now reads from results.md's folder; one written for that folder already is kept.
    assert embedded == "![x](figures/04_x.png) [web](https://x.org) [old](figures/04_x.png)"
