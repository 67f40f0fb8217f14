"""The documentation a newcomer reads first: the README fits on one screen, and every link in
it and in docs/ leads to a file and a heading that exist."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^a-z0-9 \-_]", "", text).replace(" ", "-")


def test_the_readme_is_one_screen():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


def test_every_link_in_the_docs_resolves():
    anchors = {
        doc: {anchor(line.lstrip("#")) for line in doc.read_text().splitlines() if line[:1] == "#"}
        for doc in DOCS
    }
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, fragment = target.partition("#")
            found = (doc.parent / path).resolve() if path else doc
            if not found.exists():
                broken.append(f"{doc.name}: {target} (no such file)")
            elif fragment and found.suffix == ".md" and fragment not in anchors.get(found, set()):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert broken == []
