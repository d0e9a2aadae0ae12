#!/usr/bin/env python3
"""Checks the Grafana dashboard and the Prometheus alert rules against the README's metric catalogue.

Fails (exit 1), listing every problem, when:
- a PromQL expression (dashboard panel targets, dashboard template variable queries, and every
  `expr:` in deploy/prometheus/alerts.yml when that file exists) names a metric that is not in
  the README's "Operations" metric table. Histogram metrics also accept `_bucket`, `_sum` and
  `_count`; `up` is always accepted, and so are series recorded by a `record:` rule of the alerts
  file;
- a selector filters on a label the metric does not have, or an aggregation groups by a label
  none of the expression's metrics has (Prometheus target labels such as `instance` and `job`
  are allowed everywhere, `le` on histogram buckets);
- a panel has no description (rows excepted), two panels share an id, or a panel or target
  does not use the templated `${datasource}` data source.

Standard library only; PyYAML is used for the alerts file when importable, otherwise a minimal
reader of `expr:` / `record:` keys (plain, quoted and block scalars).

usage: scripts/check-dashboard [--dashboard FILE] [--alerts FILE] [--readme FILE]
"""

import argparse
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ALWAYS_KNOWN = {"up"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labels Prometheus attaches to every scraped series (static and Kubernetes service discovery).
TARGET_LABELS = {"instance", "job", "pod", "namespace", "container", "service", "endpoint", "node"}

KEYWORDS = {
    # aggregation operators
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    # modifiers and set / binary operators
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "atan2", "start", "end",
    # special values
    "inf", "nan",
}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^{}]*)\}")
MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
IDENT = re.compile(r"(?<![A-Za-z0-9_:.$])([A-Za-z_:][A-Za-z0-9_:]*)")


# ------------------------------------------------------------------ README catalogue
def read_catalogue(readme_path):
    """{metric: {"labels": set, "histogram": bool}} from the first `| metric | labels |` table
    after the "## Operations" heading."""
    with open(readme_path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    catalogue = {}
    in_ops = in_table = False
    for line in lines:
        if line.startswith("## "):
            if in_ops and catalogue:
                break
            in_ops = line.strip().lower() == "## operations"
            continue
        if not in_ops:
            continue
        stripped = line.strip()
        if not stripped.startswith("|"):
            if in_table:
                break
            continue
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        if not in_table:
            if cells and cells[0].lower() == "metric":
                in_table = True
            continue
        if set(stripped) <= set("|-: "):
            continue  # the separator row
        names = re.findall(r"`([A-Za-z_:][A-Za-z0-9_:]*)`", cells[0])
        label_cell = re.sub(r"\([^)]*\)", "", cells[1] if len(cells) > 1 else "")
        labels = {x.strip() for x in label_cell.split(",") if x.strip()}
        meaning = cells[2] if len(cells) > 2 else ""
        for name in names:
            catalogue[name] = {"labels": labels, "histogram": "histogram" in meaning.lower()}
    return catalogue


# ------------------------------------------------------------------ PromQL
def strip_promql(expr):
    """Removes comments, string literals, Grafana variables, ranges, offsets and numbers."""
    out, i, quote = [], 0, None
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\" and quote != "`":
                i += 2
                continue
            if c == quote:
                quote = None
                out.append('""')
        elif c in "\"'`":
            quote = c
        elif c == "#":
            while i < len(expr) and expr[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    s = "".join(out)
    s = re.sub(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]", " ", s)  # Grafana variables
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range and subquery durations
    s = re.sub(r"\boffset\s+-?[0-9a-zA-Z.]+", " ", s)
    s = re.sub(r"@\s*(start|end)\s*\(\s*\)|@\s*[0-9.]+", " ", s)
    s = re.sub(r"(?<![A-Za-z0-9_:])(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?)", " ", s)
    return s


def analyse(expr):
    """Returns (metrics, selector_labels, grouping_labels) used by one PromQL expression:
    metrics is a set of names, selector_labels a list of (metric, label), grouping_labels a
    set of labels named in by/without/on/ignoring/group_left/group_right."""
    s = strip_promql(expr)
    grouping = set()
    for m in GROUPING.finditer(s):
        grouping |= {x.strip() for x in m.group(2).split(",") if x.strip()}
    s = GROUPING.sub(" ", s)
    selector_labels = []
    metrics = set()
    for m in SELECTOR.finditer(s):
        name = m.group(1)
        if name in KEYWORDS:
            name = None
        for label in MATCHER_LABEL.findall(m.group(2)):
            if label == "__name__":
                continue
            selector_labels.append((name, label))
    # Selectors without a metric name: {__name__="x"}.
    for m in re.finditer(r'__name__\s*=\s*"([^"]*)"', expr):
        metrics.add(m.group(1))
    s = re.sub(r"\{[^{}]*\}", " ", s)
    for m in IDENT.finditer(s):
        name = m.group(1)
        rest = s[m.end():].lstrip()
        if name.lower() in KEYWORDS or rest.startswith("("):
            continue  # operator, keyword or function call
        metrics.add(name)
    return metrics, selector_labels, grouping


def variable_exprs(query):
    """PromQL inside a Grafana Prometheus variable query, plus (metric, label) it asks for."""
    q = query.strip()
    m = re.fullmatch(r"label_values\s*\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", q, re.S)
    if m:
        return [m.group(1)], [(m.group(1).strip(), m.group(2))]
    if re.fullmatch(r"label_values\s*\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)", q):
        return [], []
    m = re.fullmatch(r"query_result\s*\((.*)\)", q, re.S)
    if m:
        return [m.group(1)], []
    if re.fullmatch(r"(metrics|label_names)\s*\(.*\)", q, re.S):
        return [], []
    return [q], []


# ------------------------------------------------------------------ dashboard
def walk_panels(panels):
    for panel in panels or []:
        yield panel
        yield from walk_panels(panel.get("panels"))


def uses_datasource_variable(ds):
    if ds is None:
        return True  # inherits the panel's
    if isinstance(ds, str):
        return ds.startswith("$")
    uid = str(ds.get("uid", ""))
    return uid.startswith("$") or uid in ("-- Mixed --", "-- Dashboard --")


def dashboard_items(path, problems):
    if not os.path.exists(path):
        problems.append(f"{path}: no such file")
        return [], 0
    with open(path, encoding="utf-8") as f:
        try:
            dashboard = json.load(f)
        except json.JSONDecodeError as e:
            problems.append(f"{path}: not valid JSON: {e}")
            return [], 0
    items = []  # (where, expr)
    seen_ids = {}
    count = 0
    for panel in walk_panels(dashboard.get("panels")):
        count += 1
        title = panel.get("title") or "(untitled)"
        where = f"panel {panel.get('id')} \"{title}\""
        pid = panel.get("id")
        if pid is None:
            problems.append(f"{where}: no id")
        elif pid in seen_ids:
            problems.append(f"{where}: duplicate id (also \"{seen_ids[pid]}\")")
        else:
            seen_ids[pid] = title
        if panel.get("type") == "row":
            continue
        if not str(panel.get("description", "")).strip():
            problems.append(f"{where}: no description")
        if not uses_datasource_variable(panel.get("datasource")):
            problems.append(f"{where}: data source is not the ${{datasource}} variable")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no query")
        for t in targets:
            if not uses_datasource_variable(t.get("datasource")):
                problems.append(f"{where} target {t.get('refId')}: data source is not "
                                "the ${datasource} variable")
            if str(t.get("expr", "")).strip():
                items.append((f"{where} target {t.get('refId')}", t["expr"], []))
            else:
                problems.append(f"{where} target {t.get('refId')}: empty expr")
    for var in (dashboard.get("templating") or {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        exprs, label_asks = variable_exprs(str(query or ""))
        for e in exprs:
            items.append((f"variable ${var.get('name')}", e, label_asks))
    return items, count


# ------------------------------------------------------------------ alert rules
def _unquote(value):
    v = value.strip()
    if len(v) >= 2 and v[0] == v[-1] == "'":
        return v[1:-1].replace("''", "'")
    if len(v) >= 2 and v[0] == v[-1] == '"':
        return json.loads(v)
    return v


def minimal_rule_reader(text):
    """[(kind, line, value)] for every `expr:` and `record:` key, kind being the key."""
    lines = text.splitlines()
    out = []
    key_re = re.compile(r"^(\s*(?:-\s+)?)(expr|record)\s*:\s?(.*)$")
    i = 0
    while i < len(lines):
        m = key_re.match(lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group(1))
        kind, value = m.group(2), m.group(3).rstrip()
        start = i + 1
        i += 1
        block = []
        while i < len(lines) and (not lines[i].strip()
                                  or len(lines[i]) - len(lines[i].lstrip()) > indent):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        if re.fullmatch(r"[|>][-+0-9]*\s*(#.*)?", value):
            body = block
            pad = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
            sep = "\n" if value.startswith("|") else " "
            value = sep.join(b[pad:] for b in body)
        else:
            if not value.startswith(("'", '"')):
                value = re.sub(r"\s+#.*$", "", value)
            value = " ".join([value] + [b.strip() for b in block])
            value = _unquote(value)
        out.append((kind, start, value))
    return out


def alert_rules(path, minimal=False):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        if minimal:
            raise ImportError
        import yaml  # noqa: PLC0415 (optional)
    except ImportError:
        return minimal_rule_reader(text), "minimal reader"
    out = []
    doc = yaml.safe_load(text) or {}
    for group in doc.get("groups") or []:
        for n, rule in enumerate(group.get("rules") or []):
            where = f"group {group.get('name')} rule {n + 1}"
            for kind in ("record", "expr"):
                if kind in rule:
                    out.append((kind, where, str(rule[kind])))
    return out, "PyYAML"


# ------------------------------------------------------------------ main
def shown(path):
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dashboard", default=os.path.join(ROOT, "deploy/grafana/hookbridge.json"))
    parser.add_argument("--alerts", default=os.path.join(ROOT, "deploy/prometheus/alerts.yml"))
    parser.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    parser.add_argument("--minimal-yaml", action="store_true",
                        help="read the alerts file with the built-in reader even if PyYAML exists")
    args = parser.parse_args()

    problems = []
    catalogue = read_catalogue(args.readme)
    if not catalogue:
        print(f"check-dashboard: no metric table under '## Operations' in {args.readme}")
        return 1

    items, panel_count = dashboard_items(args.dashboard, problems)
    sources = [f"{shown(args.dashboard)} ({panel_count} panels)"]
    recorded = set()
    if os.path.exists(args.alerts):
        rules, reader = alert_rules(args.alerts, args.minimal_yaml)
        rel = shown(args.alerts)
        for kind, where, value in rules:
            if kind == "record":
                recorded.add(value.strip())
            else:
                items.append((f"{rel}:{where}", value, []))
        sources.append(f"{rel} ({sum(k == 'expr' for k, _, _ in rules)} exprs, {reader})")
    else:
        sources.append(f"{shown(args.alerts)} (absent, skipped)")

    def base(name):
        if name in catalogue:
            return name
        for suffix in HISTOGRAM_SUFFIXES:
            stem = name[: -len(suffix)]
            if name.endswith(suffix) and catalogue.get(stem, {}).get("histogram"):
                return stem
        return None

    def labels_of(name):
        b = base(name)
        if b is None:
            return None  # unknown metric (reported separately) or recorded/`up`: not checked
        labels = set(catalogue[b]["labels"]) | TARGET_LABELS
        if name.endswith("_bucket") and b != name:
            labels.add("le")
        return labels

    used = set()
    for where, expr, label_asks in items:
        metrics, selector_labels, grouping = analyse(expr)
        if not metrics and "(" not in expr and "{" not in expr:
            problems.append(f"{where}: no metric found in `{expr}`")
        for name in sorted(metrics):
            used.add(name)
            if base(name) is None and name not in ALWAYS_KNOWN and name not in recorded:
                problems.append(f"{where}: metric `{name}` is not in the README catalogue")
        for name, label in selector_labels + label_asks:
            known = labels_of(name) if name else None
            if known is not None and label not in known:
                problems.append(f"{where}: `{name}` has no label `{label}`")
        everything = set(TARGET_LABELS)
        checkable = True
        for name in metrics:
            known = labels_of(name)
            if known is None:
                checkable = False
            else:
                everything |= known
        if checkable:
            for label in sorted(grouping - everything):
                problems.append(f"{where}: groups by `{label}`, which none of its metrics has")

    print("check-dashboard: " + "; ".join(sources))
    print(f"  {len(items)} expressions, {len(used)} metrics used, "
          f"{len(catalogue)} in the README catalogue")
    unused = sorted(m for m in catalogue if m not in {base(u) for u in used})
    if unused:
        print("  catalogue metrics not used anywhere: " + ", ".join(unused))
    if problems:
        print(f"FAILED: {len(problems)} problem(s)")
        for p in problems:
            print("  - " + p)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
