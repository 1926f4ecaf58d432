"""The report in a real browser: headless Chromium (/usr/bin/chromium, driven by Selenium) opens a small
generated landing page and its reports, made by the report's own functions from stand-in notebooks (no
training), and finds every figure loaded, every link resolved, no code in the reading renderings and
no error in the console. Skipped, with the reason, where Chromium or its driver is missing."""

import shutil
from pathlib import Path

import pytest
from test_report import _record, executed_stand_in

from cifar_utils.report import browser, landing, rendering
from cifar_utils.report import runner as R

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(browser.unavailable() is not None, reason=f"no browser: {browser.unavailable()}"),
]

STAND_INS = ("01_data_exploration.ipynb", "03_results_analysis.ipynb")


@pytest.fixture(scope="module")
def site(tmp_path_factory, synthetic_root) -> Path:
    """An output folder as the report leaves it: index.html, reports/ (both renderings), figures/, notebooks/."""
    root = tmp_path_factory.mktemp("site")
    out, staging = root / "outputs", root / "outputs" / ".report-staging-pid1-x"
    display = rendering.PathDisplay(out, staging, synthetic_root)
    for name in STAND_INS:
        executed = executed_stand_in(root / "nbs", staging, synthetic_root, name)
        rendering.write_renderings(executed, staging / "reports", display)
    records = [
        _record(root / "runs" / "seed", 0.79, val=0.795),
        _record(root / "runs" / "fast", 0.94, "fast", val=0.93),
    ]
    summary = landing.executive_summary(landing.configurations(records))
    landing.write_index(staging, summary, R.NOTEBOOKS)  # links only the reports it finds (03's, here)
    shutil.move(staging, out / "moved")  # as the report moves the staging folder's contents into place
    for item in (out / "moved").iterdir():
        shutil.move(item, out / item.name)
    return out


@pytest.fixture(scope="module")
def driver():
    with browser.chromium() as d:
        yield d


def test_landing_page_and_every_report_load_cleanly_in_chromium(site, driver):
    problems, pages = browser.check_site(site / "index.html", driver)
    assert not problems, "\n".join(problems)
    expected = {site / "index.html"} | {
        site / "reports" / f for n in STAND_INS for f in rendering.rendering_names(Path(n).stem)
    }
    assert set(pages) == expected  # every report reached from the landing page, both renderings
    driver.get((site / "index.html").as_uri())
    assert driver.execute_script("return document.images.length") == len(STAND_INS)  # each stand-in's figure
    summary = driver.find_element("css selector", ".summary").text
    assert "Best model, chosen on validation accuracy" in summary and "the fast recipe" in summary


def test_the_reading_rendering_hides_code_that_the_other_shows(site, driver):
    plain, coded = rendering.rendering_names("01_data_exploration")
    counts = {}
    for name in (plain, coded):
        driver.get((site / "reports" / name).as_uri())
        counts[name] = driver.execute_script(f"return document.querySelectorAll({browser.CODE_INPUT!r}).length")
        text = driver.find_element("tag name", "body").text
        assert "report-staging" not in text and str(site) not in text
    assert counts[plain] == 0 and counts[coded] > 0, counts


def test_the_check_finds_broken_figures_links_code_and_console_errors(site, driver, tmp_path):
    """The checks can fail: a page with each fault is reported for each."""
    shutil.copytree(site, tmp_path / "site")
    bad = tmp_path / "site"
    shutil.copy(bad / "reports" / "01_data_exploration.code.html", bad / "reports" / "code_shown.html")
    (bad / "index.html").write_text(
        '<!DOCTYPE html><html><head><title>bad</title></head><body><img src="figures/missing.png">'
        '<a href="reports/nope.html">gone</a><a href="#nowhere">anchor</a><a href="reports/code_shown.html">code</a>'
        # nbconvert's heading ids are percent-encoded and linked as written: a browser resolves that, so must we
        '<h2 id="07-%C2%B7-Title">t</h2><a href="#07-%C2%B7-Title">heading</a>'
        '<script>console.error("boom from the page")</script></body></html>'
    )
    problems, _ = browser.check_site(bad / "index.html", driver)
    text = "\n".join(problems)
    assert "index.html: image not loaded: figures/missing.png" in text
    assert "index.html: broken link reports/nope.html" in text and "missing anchor #nowhere" in text
    assert "code_shown.html: " in text and "code cell(s) shown in the reading rendering" in text
    assert "boom from the page" in text
    assert "07-%C2%B7-Title" not in text


def test_screenshot_of_the_landing_page_is_a_png(site, driver, tmp_path):
    target = browser.screenshot(site / "index.html", tmp_path / "figures" / "landing_page.png", driver)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 10_000


def test_the_landing_pages_first_screen_holds_its_answers_whole(site, driver):
    seen = browser.first_screen_text(site / "index.html", driver)
    answers = [block for block in seen if block.startswith(("Best model", "Seed baseline"))]
    assert len(answers) == 2, seen  # both answers of this small report, within 1280x800
    assert not any(block.startswith("[cut at the fold]") for block in answers)


def test_a_first_screen_screenshot_is_the_window_a_reader_sees(site, driver, tmp_path):
    import struct

    target = browser.screenshot(site / "index.html", tmp_path / "first.png", driver, *browser.FIRST_SCREEN)
    width, height = struct.unpack(">II", target.read_bytes()[16:24])  # the PNG header's IHDR chunk
    assert (width, height) == browser.FIRST_SCREEN


def test_the_report_refreshes_the_landing_screenshot_or_says_why_not(site, tmp_path):
    target = tmp_path / "figures" / "landing_page.png"
    line = browser.refresh_landing_screenshot(site / "index.html", target)
    assert line == f"photographed the landing page's first screen into {target}" and target.is_file()
