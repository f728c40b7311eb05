#!/usr/bin/env python3
"""Checks of deploy/ that promtool alone does not make (run by scripts/prometheus.sh check,
from the repository's root; Python's standard library only):

- the Grafana dashboard parses, declares a schemaVersion, and every panel query is valid
  PromQL: each becomes a recording rule of a rules file that `promtool check rules` reads
  (Grafana's variables replaced first: intervals by 5m, others by .*);
- every openorder_* and process_* series named by the dashboard, the alert rules, their
  tests and the runbook is one the services serve: its name (less _bucket, _sum, _count) is
  in the catalogue of series (crates/telemetry/src/catalogue.rs);
- every alert has a summary, a description and a runbook annotation, and the runbook is a
  section of an existing page (its anchor as mdBook makes it from the heading);
- every alert has a test case where it fires and one where it must not.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

DASHBOARD = "deploy/grafana/openorder.json"
RULES = "deploy/prometheus/openorder.rules.yml"
TESTS = "deploy/prometheus/tests/*.yml"
RUNBOOK = "docs/book/src/operating/alerts.md"
CATALOGUE = "crates/telemetry/src/catalogue.rs"

errors = []


def fail(message):
    errors.append(message)


def panels_of(panels):
    for panel in panels:
        yield panel
        yield from panels_of(panel.get("panels", []))


def promql(expr):
    """A panel's query with Grafana's variables replaced, as Prometheus would get it."""
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?", "5m", expr)
    return re.sub(r"\$\{[A-Za-z0-9_]+(:[A-Za-z]+)?\}|\$[A-Za-z_][A-Za-z0-9_]*", ".*", expr)


def check_dashboard(promtool):
    try:
        with open(DASHBOARD, encoding="utf-8") as f:
            dashboard = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{DASHBOARD}: not JSON: {e}")
        return
    if not isinstance(dashboard.get("schemaVersion"), int):
        fail(f"{DASHBOARD}: no integer schemaVersion")
    rules, where = [], {}
    for panel in panels_of(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" not in target:
                continue
            name = f"dashboard_panel_{panel.get('id')}_{target.get('refId', 'A')}"
            rules.append({"record": name, "expr": promql(target["expr"])})
            where[name] = f"panel {panel.get('id')} \"{panel.get('title')}\" {target.get('refId')}"
    if not rules:
        fail(f"{DASHBOARD}: no panel has a query")
        return
    # JSON is YAML: a rules file promtool reads.
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, indent=1)
        path = f.name
    try:
        run = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if run.returncode != 0:
        out = run.stdout + run.stderr
        for name, place in where.items():
            out = out.replace(name, f"{name} ({place})")
        fail(f"{DASHBOARD}: a query is not valid PromQL:\n{out}")
    else:
        print(f"{DASHBOARD}: schemaVersion {dashboard.get('schemaVersion')}, {len(rules)} queries parse as PromQL")


def check_series_served():
    with open(CATALOGUE, encoding="utf-8") as f:
        literals = set(re.findall(r'"((?:openorder|process)_[a-z0-9_]+)"', f.read()))
    named = {}
    for path in [DASHBOARD, RULES, RUNBOOK] + sorted(glob.glob(TESTS)):
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for name in re.findall(r"\b(?:openorder|process)_[a-z0-9_]*[a-z0-9]", text):
            named.setdefault(re.sub(r"_(bucket|sum|count)$", "", name), set()).add(path)
    missing = [name for name in sorted(named) if name not in literals]
    for name in missing:
        fail(f"{name} (named in {', '.join(sorted(named[name]))}) is not served: not in {CATALOGUE}")
    if not missing:
        print(f"{len(named)} series named, each in the catalogue: {', '.join(sorted(named))}")


def mdbook_ids(path):
    """The ids mdBook gives the headings of `path` (or their {#id} attributes)."""
    ids = set()
    fenced = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.lstrip().startswith("```"):
                fenced = not fenced
            m = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
            if not m:
                continue
            heading = m.group(1)
            attr = re.search(r"\{#([^}\s]+)[^}]*\}\s*$", heading)
            if attr:
                ids.add(attr.group(1))
                continue
            text = re.sub(r"`|\*|_(?=\w)|(?<=\w)_|\[|\]\([^)]*\)", "", heading).strip().lower()
            ids.add("".join(c for c in text.replace(" ", "-") if c.isalnum() or c in "-_"))
    return ids


def alerts_of(text):
    """Each alert of a rules file: its name and the text of its rule."""
    starts = [m for m in re.finditer(r"^\s*- (alert|record):\s*(\S+)", text, re.M)]
    for i, m in enumerate(starts):
        if m.group(1) == "alert":
            end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
            group_end = text.find("\n  - name:", m.start())
            if group_end != -1:
                end = min(end, group_end)
            yield m.group(2), text[m.start():end]


def check_rules():
    with open(RULES, encoding="utf-8") as f:
        text = f.read()
    alerts = dict(alerts_of(text))
    ids = {}
    for alert, rule in alerts.items():
        for key in ("summary", "description", "runbook"):
            if not re.search(rf"^\s+{key}:", rule, re.M):
                fail(f"{RULES}: {alert} has no {key} annotation")
        m = re.search(r"^\s+runbook:\s*(\S+)", rule, re.M)
        if not m:
            continue
        page, _, anchor = m.group(1).partition("#")
        if not os.path.exists(page):
            fail(f"{RULES}: {alert}'s runbook {m.group(1)}: no {page}")
            continue
        if page not in ids:
            ids[page] = mdbook_ids(page)
        if not anchor or anchor not in ids[page]:
            fail(f"{RULES}: {alert}'s runbook {m.group(1)}: no heading with the id {anchor!r} in {page}")
    # The runbook's links to its own sections.
    if os.path.exists(RUNBOOK):
        own = ids.get(RUNBOOK) or mdbook_ids(RUNBOOK)
        with open(RUNBOOK, encoding="utf-8") as f:
            for anchor in re.findall(r"\]\(#([^)\s]+)\)", f.read()):
                if anchor not in own:
                    fail(f"{RUNBOOK}: a link to #{anchor}, which no heading there has")
    # Test cases: (alert, fires?) of every eval_time block of every test file.
    cases = set()
    for path in sorted(glob.glob(TESTS)):
        with open(path, encoding="utf-8") as f:
            tests = f.read()
        for block in re.split(r"^\s*- eval_time:", tests, flags=re.M)[1:]:
            name = re.search(r"^\s*alertname:\s*(\S+)", block, re.M)
            if not name:
                continue
            quiet = re.search(r"^\s*exp_alerts:\s*\[\s*\]", block, re.M)
            cases.add((name.group(1), not quiet))
    for alert in alerts:
        if (alert, True) not in cases:
            fail(f"{TESTS}: no case where {alert} fires")
        if (alert, False) not in cases:
            fail(f"{TESTS}: no case where {alert} must not fire")
    print(f"{RULES}: {len(alerts)} alerts, each with its annotations, runbook section and a firing and a quiet test case")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--promtool", default="promtool")
    args = parser.parse_args()
    check_dashboard(args.promtool)
    check_series_served()
    check_rules()
    if errors:
        for e in errors:
            print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
