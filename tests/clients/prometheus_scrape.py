#!/usr/bin/env python3
"""Scrape a Prometheus text endpoint and parse it with prometheus_client's own parser.

Steps: GET --url; parse the body with prometheus_client.parser.text_string_to_metric_families
(the parser of the reference Python client); check that every family declares its type
(counter, gauge or histogram: Strato exposes no untyped metrics), that counter values are
non-negative, and for every histogram series (one label set without `le`): bucket bounds
strictly increase and end with +Inf, bucket counts are cumulative (never decrease), the +Inf
bucket equals _count, and _sum is present.

Prints one JSON line: {"families": {"<family>": "<type>"}, "samples": [["<sample name>",
{"<label>": "<value>"}, <value>], ...], "histograms": <number of histogram series checked>}.
See _harness.py for the failure and timeout contract.
"""

from __future__ import annotations

import argparse
import math
import urllib.request

import _harness as h

SCRIPT = "prometheus_scrape"


def check_histogram(family, problems: list[str]) -> int:
    """Checks each series of a histogram family; returns how many series it has."""
    series: dict[tuple, dict] = {}
    for s in family.samples:
        labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        entry = series.setdefault(labels, {"buckets": [], "count": None, "sum": None})
        if s.name.endswith("_bucket"):
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            entry["count"] = s.value
        elif s.name.endswith("_sum"):
            entry["sum"] = s.value
    for labels, entry in series.items():
        where = f"{family.name}{dict(labels)}"
        buckets = entry["buckets"]
        bounds = [b for b, _ in buckets]
        if not buckets or not math.isinf(bounds[-1]):
            problems.append(f"{where}: no +Inf bucket")
            continue
        if any(a >= b for a, b in zip(bounds, bounds[1:])):
            problems.append(f"{where}: bucket bounds do not increase: {bounds}")
        counts = [c for _, c in buckets]
        if any(a > b for a, b in zip(counts, counts[1:])):
            problems.append(f"{where}: bucket counts are not cumulative: {counts}")
        if entry["count"] is None or entry["count"] != counts[-1]:
            problems.append(f"{where}: +Inf bucket {counts[-1]} != _count {entry['count']}")
        if entry["sum"] is None or entry["sum"] < 0:
            problems.append(f"{where}: _sum missing or negative: {entry['sum']}")
    return len(series)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="the /metrics URL, e.g. http://127.0.0.1:9644/metrics")
    p.add_argument("--timeout-s", type=float, default=30.0, help="hard limit for the whole run")
    args = p.parse_args()
    h.start_watchdog(args.timeout_s, f"scraping {args.url}")
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError as exc:
        h.fail(f"prometheus_client is missing ({exc}): run ./scripts/test.sh, which installs tests/clients/requirements.txt")
    try:
        with urllib.request.urlopen(args.url, timeout=args.timeout_s / 2) as response:
            text = response.read().decode("utf-8")
    except Exception as exc:  # noqa: BLE001 - reported as the script's failure
        h.fail(f"GET {args.url}: {h.describe(exc)}")
    families: dict[str, str] = {}
    samples: list = []
    problems: list[str] = []
    histograms = 0
    try:
        for family in text_string_to_metric_families(text):
            if family.name in families:
                problems.append(f"family {family.name} appears twice")
            families[family.name] = family.type
            if family.type not in ("counter", "gauge", "histogram"):
                problems.append(f"family {family.name} has type {family.type}")
            if family.type == "histogram":
                histograms += check_histogram(family, problems)
            for s in family.samples:
                if family.type == "counter" and s.value < 0:
                    problems.append(f"counter sample {s.name}{s.labels} is negative: {s.value}")
                samples.append([s.name, dict(s.labels), s.value])
    except Exception as exc:  # noqa: BLE001 - a parse error is the check failing
        h.fail(f"prometheus_client could not parse the exposition: {h.describe(exc)}")
    if problems:
        h.fail("; ".join(problems[:20]), problems=len(problems))
    h.succeed({"families": families, "samples": samples, "histograms": histograms})


if __name__ == "__main__":
    main()
