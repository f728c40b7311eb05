#!/usr/bin/env python3
"""Checks the links of README.md and of the book (docs/book/src), from the Markdown sources.

- Every relative link and image points at a file or directory that exists.
- Every `#anchor` into a Markdown file (or within one) names one of its headings, with the ids
  mdBook gives them (the text, lower-cased; letters, digits, `_` and `-` kept, spaces as `-`;
  a repeated id gets `-1`, `-2`, ...).
- A book page links no Markdown file outside the book: mdBook makes such a link `.html`, which
  the built book does not have (include the file as a page instead, as benchmarks.md does).
- Every code block of the book names its language (`sh`, `text`, ...): `mdbook test` would
  compile one without as Rust.
- Every page under docs/book/src is in SUMMARY.md.

Files a page includes (`{{#include path}}`) are read in its place for headings and code
blocks, and their own links are checked from where they are. Prints every problem as
`file:line: link: what is wrong` and exits 1 if there is any. Run from anywhere:
`scripts/book_links.py`.
"""

import os
import re
import sys

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
BOOK_SRC = os.path.join(ROOT, "docs", "book", "src")

INCLUDE = re.compile(r"\{\{#include\s+([^}\s:]+)(?::[^}]*)?\s*\}\}")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
INLINE_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", re.I)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")


def rel(path):
    return os.path.relpath(path, ROOT)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def expanded(path, seen=()):
    """The text mdBook renders for a page: its includes read in their place."""
    text = read(path)

    def include(match):
        target = os.path.normpath(os.path.join(os.path.dirname(path), match.group(1)))
        if target in seen or not os.path.isfile(target):
            return match.group(0)
        return expanded(target, seen + (path,))

    return INCLUDE.sub(include, text)


def includes(path):
    """The files a page includes, resolved."""
    return [
        os.path.normpath(os.path.join(os.path.dirname(path), m.group(1)))
        for m in INCLUDE.finditer(read(path))
    ]


def fences(text):
    """`(line number, info string)` of every fenced code block's opening line."""
    out, open_fence = [], None
    for number, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if not m:
            continue
        marker, info = m.group(1), m.group(2).strip()
        if open_fence is None:
            open_fence = marker
            out.append((number, info))
        elif marker[0] == open_fence[0] and len(marker) >= len(open_fence) and not info:
            open_fence = None
    return out


def prose(text):
    """The text with code blocks and code spans blanked out, lines and offsets kept."""
    lines, open_fence = text.split("\n"), None
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if open_fence is None and m:
            open_fence = m.group(1)
            lines[i] = ""
        elif open_fence is not None:
            if m and m.group(1)[0] == open_fence[0] and len(m.group(1)) >= len(open_fence) and not m.group(2).strip():
                open_fence = None
            lines[i] = ""
    text = "\n".join(lines)
    return CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", "x", m.group(0)), text)


def heading_id(heading):
    """mdBook's id for a heading's Markdown text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # HTML tags
    text = text.replace("`", "").replace("*", "")
    out = []
    for ch in text.strip().lower():
        if ch.isalnum() or ch in "_-":
            out.append(ch)
        elif ch.isspace():
            out.append("-")
    return "".join(out)


_ids = {}


def ids(path):
    """Every heading id of a Markdown file (its includes read in their place)."""
    if path not in _ids:
        used = set()
        lines, open_fence = expanded(path).split("\n"), None
        for line in lines:
            f = FENCE.match(line)
            if f:
                if open_fence is None:
                    open_fence = f.group(1)
                elif f.group(1)[0] == open_fence[0] and not f.group(2).strip():
                    open_fence = None
                continue
            if open_fence is not None:
                continue
            m = HEADING.match(line)
            if not m:
                continue
            base = heading_id(m.group(2))
            candidate, n = base, 0
            while candidate in used:
                n += 1
                candidate = f"{base}-{n}"
            used.add(candidate)
        _ids[path] = used
    return _ids[path]


def in_book(path):
    return path == BOOK_SRC or path.startswith(BOOK_SRC + os.sep)


def check_links(path, problems):
    text = prose(read(path))
    targets = []
    for m in INLINE_LINK.finditer(text):
        targets.append((m.start(3), m.group(3)))
    for m in REFERENCE_DEF.finditer(text):
        targets.append((m.start(1), m.group(1)))
    for m in HTML_LINK.finditer(text):
        targets.append((m.start(1), m.group(1)))
    for offset, target in targets:
        line = text.count("\n", 0, offset) + 1
        where = f"{rel(path)}:{line}: {target}"
        target = target.strip("<>")
        if SCHEME.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        file_part = file_part.split("?", 1)[0]
        if file_part:
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
        else:
            resolved = path
        if not (resolved == ROOT or resolved.startswith(ROOT + os.sep)):
            problems.append(f"{where}: points outside the repository")
            continue
        if not os.path.exists(resolved):
            problems.append(f"{where}: no such file ({rel(resolved)})")
            continue
        if in_book(path) and resolved.endswith(".md") and not in_book(resolved):
            problems.append(
                f"{where}: a Markdown file outside the book (mdBook links it as .html, which the "
                "built book does not have); include it as a page and link that"
            )
            continue
        if anchor and resolved.endswith(".md") and anchor not in ids(resolved):
            problems.append(f"{where}: {rel(resolved)} has no heading #{anchor}")


def main():
    problems = []
    pages = []
    for directory, _, files in os.walk(BOOK_SRC):
        pages += [os.path.join(directory, f) for f in sorted(files) if f.endswith(".md")]
    pages.sort()
    summary = os.path.join(BOOK_SRC, "SUMMARY.md")
    if not os.path.isfile(summary):
        problems.append(f"{rel(summary)}: missing")
    else:
        listed = {
            os.path.normpath(os.path.join(BOOK_SRC, m.group(3)))
            for m in INLINE_LINK.finditer(prose(read(summary)))
        }
        for page in pages:
            if page != summary and page not in listed:
                problems.append(f"{rel(page)}: not in SUMMARY.md")

    checked = set()
    for path in [os.path.join(ROOT, "README.md")] + pages:
        for f in [path] + (includes(path) if in_book(path) else []):
            if f in checked:
                continue
            checked.add(f)
            if not os.path.isfile(f):
                problems.append(f"{rel(path)}: includes {rel(f)}, which does not exist")
                continue
            check_links(f, problems)
        if in_book(path):
            for line, info in fences(expanded(path)):
                language = info.split(",")[0].split()[0] if info else ""
                if language in ("", "rust"):
                    problems.append(
                        f"{rel(path)}: a code block (line {line} of the page as rendered) names no "
                        "language other than Rust: mark it ```sh, ```text, ..."
                    )

    if problems:
        print(f"book_links: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"book_links: {len(checked)} files, every link and anchor found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
