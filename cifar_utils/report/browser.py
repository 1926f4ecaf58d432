"""The report as a reader's browser shows it: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by Selenium (the dev extra).

    python -m cifar_utils.report.browser check outputs/index.html        # figures load, links resolve, no console error
    python -m cifar_utils.report.browser screenshot outputs/index.html outputs/figures/landing_page.png --height 800
    python -m cifar_utils.report.browser first-screen outputs/index.html  # the text a reader sees before scrolling

A full report into outputs/ photographs the landing page's first screen itself (refresh_landing_screenshot).

`check_site` starts at a page and visits every local HTML page it links to; tests/report/test_browser.py runs
it on a small generated report. Nothing here needs the network: the pages are files.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import CifarError
from .rendering import CODE_SUFFIX

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError:  # the dev extra; the library works without it
    webdriver = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# A code cell's input in nbconvert's lab template; the reading rendering must have none.
CODE_INPUT = ".jp-CodeCell .jp-InputArea, .jp-InputArea-editor"


def unavailable() -> str | None:
    """Why no browser can be started here, or None."""
    if webdriver is None:
        return "selenium is not installed (pip install -e .[dev])"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} is missing (apt-get install chromium chromium-driver; .ci/run does)"
    return None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900):
    """A headless Chromium session; its console messages are kept for `console_errors`."""
    if (reason := unavailable()) is not None:
        raise CifarError(f"cannot start the browser: {reason}")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    """The console's errors since the last call (the log is drained as it is read)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def _page_problems(driver, page: Path) -> tuple[list[str], list[Path]]:
    """Open one page: its problems, and the local HTML pages it links to."""
    driver.get(page.resolve().as_uri())
    name, problems, pages = page.name, [], []
    if driver.execute_script("return document.readyState") != "complete" or not driver.title:
        problems.append(f"{name}: did not load (no title)")
    for src in driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.getAttribute('src').slice(0, 80))"
    ):
        problems.append(f"{name}: image not loaded: {src}")
    ids = set(driver.execute_script("return Array.from(document.querySelectorAll('[id]')).map(e => e.id)"))
    for href in driver.execute_script("return Array.from(document.links).map(a => a.getAttribute('href'))"):
        parts = urlsplit(href)
        if parts.scheme in ("http", "https", "mailto"):
            continue  # the network is not part of the report; such links are the notebooks' references
        if not parts.path:  # an anchor on this page
            # HTML's rule: an id equal to the fragment as written, else to it percent-decoded (nbconvert writes
            # a heading's id percent-encoded, "07-%C2%B7-...", and links to it as written)
            if parts.fragment not in ids and unquote(parts.fragment) not in ids:
                problems.append(f"{name}: link to a missing anchor #{parts.fragment}")
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        if not target.is_file():
            problems.append(f"{name}: broken link {href}")
        elif target.suffix == ".html":
            pages.append(target)
    if not name.endswith(CODE_SUFFIX) and (
        shown := driver.execute_script(f"return document.querySelectorAll({CODE_INPUT!r}).length")
    ):
        problems.append(f"{name}: {shown} code cell(s) shown in the reading rendering")
    problems += [f"{name}: console error: {message}" for message in console_errors(driver)]
    return problems, pages


def check_site(start: str | Path, driver) -> tuple[list[str], list[Path]]:
    """Visit `start` and every local HTML page reachable from it: (problems found, pages visited)."""
    queue, seen, problems = [Path(start).resolve()], [], []
    while queue:
        page = queue.pop(0)
        if page in seen:
            continue
        seen.append(page)
        found, linked = _page_problems(driver, page)
        problems += found
        queue += [p for p in linked if p not in seen]
    return problems, seen


# The first screen a reader sees: a common laptop window. The landing page's answers must fit in it.
FIRST_SCREEN = (1280, 800)

# The text of every block (paragraph, list item, heading, table cell) that shows within the window, in page order.
_VISIBLE_TEXT = """
const blocks = Array.from(document.querySelectorAll('h1, h2, h3, p, li, th, td'));
return blocks.filter(e => {
  if (e.matches('li') && e.querySelector('p')) { return false; }  // its paragraphs are listed themselves
  const r = e.getBoundingClientRect();
  return r.bottom > 0 && r.top < window.innerHeight && e.innerText.trim();
}).map(e => {
  const r = e.getBoundingClientRect();
  return (r.bottom > window.innerHeight ? '[cut at the fold] ' : '') + e.innerText.trim();
});
"""


def _page_size(driver, width: int, height: int) -> None:
    """Give the page itself width x height pixels: set_window_size sets the outer window, so it is grown by the
    browser's own chrome, measured once at that size."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])


def first_screen_text(page: str | Path, driver, size: tuple[int, int] = FIRST_SCREEN) -> list[str]:
    """What a reader sees of `page` before scrolling, in a `size` window: one string per block."""
    driver.get(Path(page).resolve().as_uri())
    _page_size(driver, *size)
    return driver.execute_script(_VISIBLE_TEXT)


def screenshot(page: str | Path, target: str | Path, driver, width: int = 1280, height: int | None = None) -> Path:
    """A PNG of the whole page (the window grown to the page's height), or of its first `height` pixels."""
    driver.get(Path(page).resolve().as_uri())
    if height is None:
        height = min(max(driver.execute_script("return document.documentElement.scrollHeight"), 600), 16000)
    _page_size(driver, width, height)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not driver.save_screenshot(str(target)):
        raise CifarError(f"the browser could not write the screenshot {target}")
    return target


def refresh_landing_screenshot(index: Path, target: Path) -> str:
    """Photograph the landing page's first screen into `target` (what the README and a reader's first look show);
    where no browser can start, leave `target` as it is. Returns the line to log either way."""
    if (reason := unavailable()) is not None:
        return f"{target} left as it was: {reason}"
    try:
        with chromium() as driver:
            screenshot(index, target, driver, *FIRST_SCREEN)
    except Exception as exc:  # a browser that fails to start must not fail a report that is already in place
        return f"{target} left as it was: the browser failed ({type(exc).__name__}: {exc})"
    return f"photographed the landing page's first screen into {target}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cifar_utils.report.browser", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="open a page and every local page it links to; list the problems")
    check.add_argument("page", type=Path)
    shot = sub.add_parser("screenshot", help="write a PNG of the whole page, or of its first screen")
    shot.add_argument("page", type=Path)
    shot.add_argument("target", type=Path)
    shot.add_argument("--width", type=int, default=FIRST_SCREEN[0])
    shot.add_argument("--height", type=int, help="only the first HEIGHT pixels (default: the whole page)")
    first = sub.add_parser("first-screen", help="print the text a reader sees before scrolling (1280x800)")
    first.add_argument("page", type=Path)
    args = parser.parse_args(argv)
    try:
        if not args.page.is_file():
            raise CifarError(f"{args.page} not found; write the report first (make report)")
        with chromium() as driver:
            if args.command == "screenshot":
                print(f"wrote {screenshot(args.page, args.target, driver, args.width, args.height)}")
                return 0
            if args.command == "first-screen":
                print("\n\n".join(first_screen_text(args.page, driver)))
                return 0
            problems, pages = check_site(args.page, driver)
    except CifarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        "\n".join(problems)
        or f"{len(pages)} pages checked: figures load, links resolve, no code in the "
        f"reading renderings, no console errors"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
