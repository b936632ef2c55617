"""Every relative link in README.md and docs/*.md leads somewhere: ``[text](path)`` and ``[text](path#anchor)`` name a
file or folder of the repository, and an anchor into a markdown page names one of its headings (GitHub's slugs).
Web and mail links are not followed. Plain text, no network: a fraction of a second."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
EXTERNAL = ("http://", "https://", "mailto:")


def links(text: str) -> list[str]:
    """The targets of a page's markdown links, code blocks and inline code left out."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return LINK.findall(prose)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub makes for a page's headings: lower case, punctuation dropped, spaces as hyphens, and
    ``-1``, ``-2``, ... after repeats."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        if seen[slug]:
            seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def broken(page: Path) -> list[str]:
    """The relative links of ``page`` that lead nowhere, each with why."""
    found = []
    for target in links(page.read_text()):
        if target.startswith(EXTERNAL):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            found.append(f"{target}: no such file or folder")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            found.append(f"{target}: no such heading in {resolved.name}")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert broken(page) == []


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / "there.md").write_text("# A page: its `title`\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [ok](there.md#a-page-its-title) [ok](there.md#twice-1) [ok](#local) "
                    "[web](https://example.org/x) `[code](gone.md)`\n\n# Local\n\n"
                    "[gone](gone.md) [bad anchor](there.md#nowhere)\n")
    assert [line.split(":")[0] for line in broken(page)] == ["gone.md", "there.md#nowhere"]
