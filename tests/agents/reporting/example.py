"""The README's example report, ``docs/report-example.html`` (and its screenshot
``docs/report-example.png``), rendered from a realistic synthetic month under Durham's
policy. ``test_render`` checks the committed page is what this renders, so the example
cannot drift from the renderer. Regenerate both after changing the renderer::

    python -m tests.agents.reporting.example          # page and screenshot (needs chromium)
    python -m tests.agents.reporting.example --no-png # page only
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from heart.agents.reporting.aggregate import apply, new_state, report
from heart.agents.reporting.render import render_html
from heart.policy import load_policy
from heart.schemas.reports import MonthReport
from tests.agents.reporting.synthetic import local, realistic_month

DOCS = Path(__file__).resolve().parents[3] / "docs"
HTML = DOCS / "report-example.html"
PNG = DOCS / "report-example.png"
MONTH = "2024-07"
#: The screenshot's height: Chromium's --screenshot captures the window, not the page, so
#: the window is made taller than the page (the page's own background fills the rest).
PAGE_HEIGHT = 5100


def example_report() -> MonthReport:
    """July 2024 in Durham: 31 days of calls, with their follow-ups into August."""
    policy = load_policy()
    state = new_state(policy)
    for event in realistic_month(policy, local(2024, 7, 1, 0), 31):
        apply(state, event)
    return report(state, MONTH)


def example_page() -> str:
    return render_html(example_report())


def screenshot(html: Path, png: Path, width: int = 1200) -> None:
    """A full-page screenshot of ``html`` with headless Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not found: install Debian's chromium package, or --no-png")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{PAGE_HEIGHT}",
                f"--screenshot={png}",
                html.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-png", action="store_true", help="write the page only")
    args = parser.parse_args()
    HTML.write_text(example_page(), encoding="utf-8")
    print(f"wrote {HTML}")
    if not args.no_png:
        screenshot(HTML, PNG)
        print(f"wrote {PNG}")


if __name__ == "__main__":
    main()
