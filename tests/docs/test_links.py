"""Every relative link of the Markdown docs (README.md and docs/**/*.md) leads somewhere.

A link `[text](path)`, `![alt](path)` or `[ref]: path` whose target is not a URL (no scheme
such as `https:` or `mailto:`) must name a file or directory that exists, relative to the file
that links it. A fragment (`path.md#heading`, or `#heading` within the same file) must name a
heading of that Markdown file, slugged as GitHub does: the heading's text without its inline
markup, lowercased, each character that is not a letter, a digit, a space, `-` or `_` removed,
each space replaced with `-`, and `-1`, `-2`... added to repeated slugs; an explicit
`<a id="...">` or `<a name="...">` counts too. Fragments into other kinds of file (`#L10`) are
not checked. Links inside fenced code blocks and inline code spans are not links.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) or [text](target "title") or [text](<target>); `text` may hold one level of
# brackets, as in a badge [![alt](img)](target).
INLINE_LINK = re.compile(
    r"\[(?P<text>(?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(?P<target><[^>]*>|[^\s()]+)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(?P<target><[^>]*>|\S+)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:\s+(?P<text>.*?))?(?:\s+#+)?\s*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)\s*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
NOT_PARAGRAPH = re.compile(r"^\s*(?:[-*+>|#]|\d+[.)]\s|$)")


@dataclass(frozen=True)
class Link:
    line: int
    source: str  # as written, for the failure message
    target: str


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """The file's lines outside fenced code blocks, numbered from 1."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening[1]
        elif fence is not None:
            if opening and opening[1][0] == fence[0] and len(opening[1]) >= len(fence):
                fence = None
        else:
            lines.append((number, line))
    return lines


def links(path: Path) -> list[Link]:
    found = []
    for number, line in prose_lines(path):
        text = INLINE_CODE.sub("", line)
        for match in INLINE_LINK.finditer(text):
            found.append(Link(number, match[0], match["target"].strip("<>")))
        if definition := REFERENCE_DEFINITION.match(text):
            found.append(Link(number, definition[0].strip(), definition["target"].strip("<>")))
    return found


def heading_text(raw: str) -> str:
    """A heading's text as rendered: no inline code ticks, link targets, emphasis or tags."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)  # a link or image: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"(`+)(.+?)\1", r"\2", text)
    text = re.sub(r"(\*{1,3}|\b_{1,3})(\S(?:.*?\S)?)\1", r"\2", text)  # emphasis
    return text.strip()


def slug(text: str) -> str:
    """GitHub's anchor for a heading text (github-slugger)."""
    kept = "".join(char for char in text.lower() if char.isalnum() or char in " -_")
    return kept.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """The fragments that lead somewhere in a Markdown file: its headings' slugs (repeats
    numbered as GitHub numbers them) and explicit HTML anchors."""
    seen: Counter[str] = Counter()
    found: set[str] = set()
    previous: str | None = None
    for _, line in prose_lines(path):
        heading = None
        if atx := ATX_HEADING.match(line):
            heading = atx["text"] or ""
        elif SETEXT_UNDERLINE.match(line) and previous and not NOT_PARAGRAPH.match(previous):
            heading = previous
        if heading is not None:
            base = slug(heading_text(heading))
            found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
            seen[base] += 1
        found.update(HTML_ANCHOR.findall(line))
        previous = None if heading is not None else line
    return frozenset(found)


def problem(document: Path, link: Link) -> str | None:
    """Why `link` of `document` leads nowhere, or None when it leads somewhere."""
    if SCHEME.match(link.target) or link.target.startswith("//"):
        return None  # a URL: http(s), mailto, ...
    path_part, _, fragment = link.target.partition("#")
    target = (document.parent / unquote(path_part)).resolve() if path_part else document
    if not target.exists():
        return f"no such file or directory: {shown(target)}"
    if fragment and target.is_file() and target.suffix.lower() == ".md":
        wanted = unquote(fragment)
        if wanted not in anchors(target) and wanted.lower() not in anchors(target):
            return f"no heading with the anchor #{wanted} in {shown(target)}"
    return None


def shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


@pytest.mark.parametrize("document", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_every_relative_link_resolves(document: Path) -> None:
    broken = [
        f"{shown(document)}:{link.line}: {link.source}: {reason}"
        for link in links(document)
        if (reason := problem(document, link)) is not None
    ]
    assert not broken, "links that lead nowhere:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Publish, rollback, promote", "publish-rollback-promote"),
        ("`GET /v1/feed`", "get-v1feed"),
        ("SRM alarm in an A/B report", "srm-alarm-in-an-ab-report"),
        ("The nightly job's metrics", "the-nightly-jobs-metrics"),
        ("Redis: settings that keep data, and memory", "redis-settings-that-keep-data-and-memory"),
        ("RECSVC_READY_WITHOUT_REDIS and **you**", "recsvc_ready_without_redis-and-you"),
        ("[docs/api.md](docs/api.md): keys", "docsapimd-keys"),
    ],
)
def test_anchors_are_slugged_as_github_does(heading: str, anchor: str) -> None:
    assert slug(heading_text(heading)) == anchor


def test_the_checker_finds_links_and_skips_code(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## Title\n\n"
        "[a](missing.md) `[b](in-code.md)` [c](page.md#title-1) [d](#nowhere)\n"
        "```\n[e](in-fence.md)\n```\n[f](https://example.com/x) [g](mailto:x@example.com)\n"
        "[ref]: other.md\n",
        encoding="utf-8",
    )
    found = {link.target: problem(page, link) for link in links(page)}
    assert set(found) == {"missing.md", "page.md#title-1", "#nowhere", "https://example.com/x",
                          "mailto:x@example.com", "other.md"}  # fmt: skip
    assert found["page.md#title-1"] is None
    assert found["https://example.com/x"] is None and found["mailto:x@example.com"] is None
    assert {target for target, reason in found.items() if reason} == {
        "missing.md", "#nowhere", "other.md"
    }  # fmt: skip
