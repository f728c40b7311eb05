#!/usr/bin/env python3
"""The house rules a newcomer relies on, checked: no Rust source file under crates/ over 450
lines, no function over 100 lines, no crate whose src/ holds over 4,000 lines.

Usage: scripts/house.py [--list]   (from anywhere; --list prints every crate's size too)
Exit 1 and a line per breach when a rule is broken. Functions are found by their `fn` line
and measured by matching braces (strings, chars and line comments left out): crude, but
rustfmt's layout makes it exact enough for a limit."""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE_LIMIT, FN_LIMIT, CRATE_LIMIT = 450, 100, 4000
FN = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)')
STRING = re.compile(r'"(\\.|[^"\\])*"')
CHAR = re.compile(r"'(\\.|[^'\\])'")


def code_of(line):
    """The line without string and char literals and without a line comment."""
    line = CHAR.sub("''", STRING.sub('""', line))
    return line.split('//', 1)[0]


def long_functions(lines):
    """(first line, length, name) of each function over FN_LIMIT lines."""
    found = []
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, opened, j = 0, False, i
        while j < len(lines):
            code = code_of(lines[j])
            for ch in code:
                if ch == '{':
                    depth, opened = depth + 1, True
                elif ch == '}':
                    depth -= 1
            if opened and depth <= 0:
                break
            if not opened and code.rstrip().endswith(';'):
                break
            j += 1
        if opened and j - i + 1 > FN_LIMIT:
            found.append((i + 1, j - i + 1, m.group(6)))
    return found


def main():
    breaches, sizes = [], []
    crates = os.path.join(ROOT, 'crates')
    for crate in sorted(os.listdir(crates)):
        src_lines = 0
        for folder, _, files in os.walk(os.path.join(crates, crate)):
            if '/target' in folder:
                continue
            for name in sorted(files):
                if not name.endswith('.rs'):
                    continue
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)
                with open(path, encoding='utf-8') as f:
                    lines = f.read().split('\n')
                count = len(lines) - 1
                if rel.startswith(f'crates/{crate}/src/'):
                    src_lines += count
                if count > FILE_LIMIT:
                    breaches.append(f'{rel}: {count} lines (limit {FILE_LIMIT})')
                for at, length, fn in long_functions(lines):
                    breaches.append(f'{rel}:{at}: fn {fn} is {length} lines (limit {FN_LIMIT})')
        sizes.append((crate, src_lines))
        if src_lines > CRATE_LIMIT:
            breaches.append(f'crates/{crate}/src: {src_lines} lines (limit {CRATE_LIMIT})')
    if '--list' in sys.argv:
        for crate, n in sizes:
            print(f'{n:6} crates/{crate}/src')
    for b in breaches:
        print(f'house.py: {b}', file=sys.stderr)
    if breaches:
        sys.exit(1)
    print(f'house.py: {len(sizes)} crates; every file ≤ {FILE_LIMIT} lines, every fn ≤ {FN_LIMIT}, '
          f'every crate ≤ {CRATE_LIMIT} lines of src')


if __name__ == '__main__':
    main()
