#!/usr/bin/env python3
"""Prints illustrative ministry figures for the demo, as agent input lines (JSON, one per line),
dated relative to now so the Strategy view shows trends whatever the day. They are NOT the
ministry's figures: the documents give none (docs/strategy-progress.md); these exist only so the
demo's charts have readings.

    demo_ministry_figures.py > figures.jsonl
    postwatch-agent run --config ministry.json --input figures.jsonl
"""

import json
import time

DAY_MS = 24 * 3600 * 1000
now_ms = int(time.time() * 1000)
# Midnight UTC of today: readings are dated at the end of the period they cover.
today = now_ms - now_ms % DAY_MS


def line(indicator, days_ago, value):
    print(json.dumps({"indicator": indicator, "value": value, "observed_at_ms": today - days_ago * DAY_MS,
                      "note": "illustrative demo figure, not the ministry's"}))


print("# Illustrative demo figures, not the ministry's (tools/lib/demo_ministry_figures.py)")
# Defence spending rising 0.1 point a year: below 2 % past the end of 2024, improving too slowly.
for years_ago, share in enumerate([1.75, 1.64, 1.52, 1.45, 1.35, 1.25]):
    line("defence_spending_gdp_percent", 365 * years_ago, share)
# Arms-export licences, quarterly: above 90 % in time.
for q, (decided, in_time) in enumerate([(118, 109), (104, 97), (97, 90), (112, 103),
                                        (121, 111), (99, 93), (108, 99), (115, 106)]):
    line("arms_export_licences_decided", 91 * q, decided)
    line("arms_export_licences_in_time", 91 * q, in_time)
# Cyber diplomacy: EUR 5 m a year until last year, less this year: moving away from the target.
for years_ago, budget in enumerate([4.4, 4.8, 5.0, 5.0]):
    line("cyber_diplomacy_budget_meur", 365 * years_ago, budget)
