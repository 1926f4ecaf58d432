"""The README says what the records say: its headlines block is exactly what report.headlines generates from the
committed records (a stale or hand-edited number fails), it stays short, and every relative link in it and in
docs/ resolves."""

from pathlib import Path

import pytest
from test_output_links import local_targets

from cifar_utils.errors import CifarError
from cifar_utils.report import headlines

PROJECT = Path(__file__).resolve().parents[2]
README = PROJECT / "README.md"
DOCS = sorted((PROJECT / "docs").glob("*.md"))
MAX_LINES = 150


def test_the_headlines_block_is_what_the_committed_records_say():
    shown = headlines.block(README.read_text(encoding="utf-8"))
    wanted = headlines.readme_lines(PROJECT / "outputs", PROJECT)
    assert shown == wanted, (
        "README.md's headlines block differs from the records; run `python -m cifar_utils.report.headlines` "
        "(or `make report`) and commit README.md"
    )
    assert any(line.startswith("- Best model, chosen on validation accuracy") for line in shown)


def test_a_number_edited_by_hand_is_caught(tmp_path):
    text = README.read_text(encoding="utf-8")
    block = headlines.block(text)
    edited = [line.replace("%", "1%", 1) if "%" in line else line for line in block]  # one number changed
    assert edited != block
    changed = headlines.replace_block(text, edited, headlines.HEADLINES_BEGIN, headlines.HEADLINES_END)
    assert headlines.block(changed) != headlines.readme_lines(PROJECT / "outputs", PROJECT)


def test_the_readme_is_at_most_150_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"README.md has {lines} lines; move detail into docs/ (at most {MAX_LINES})"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: str(p.relative_to(PROJECT)))
def test_every_relative_link_resolves(page):
    targets = local_targets(page.read_text(encoding="utf-8"), html=False)
    broken = sorted({t for t in targets if t.startswith("/") or not (page.parent / t).exists()})
    assert not broken, f"{page.relative_to(PROJECT)} links to missing files: {broken}"


def test_the_block_is_rewritten_in_place_and_nothing_else(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\nbefore\n{headlines.HEADLINES_BEGIN}\n- old\n{headlines.HEADLINES_END}\nafter\n")
    out = tmp_path / "outputs"
    (out / "runs").mkdir(parents=True)
    assert headlines.write_readme(readme, out)  # no records: no answer but the one saying so
    text = readme.read_text()
    assert text.startswith("# t\n\nbefore\n<!-- headlines:begin -->\n") and text.endswith(
        "<!-- headlines:end -->\nafter\n"
    )
    assert "- old" not in text and not headlines.write_readme(readme, out)  # unchanged the second time
    readme.write_text("# no markers\n")
    with pytest.raises(CifarError, match="headlines:begin"):
        headlines.write_readme(readme, out)
