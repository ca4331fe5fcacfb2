"""The README's Terms table is the glossary the reports use, word for word."""

from __future__ import annotations

import re
from pathlib import Path

from heart.schemas.glossary import GLOSSARY

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_terms_table_is_the_glossary() -> None:
    text = README.read_text()
    section = text[text.index("## Terms") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| (?!term |---)(.+?) \| (.+) \|$", section, re.M)
    assert dict(rows) == GLOSSARY
    assert [term for term, _ in rows] == list(GLOSSARY)
