#!/usr/bin/env python3
"""Summarises an Autobahn|TestSuite fuzzingclient report (reports/servers/index.json).

Usage: check.py INDEX_JSON [LABEL]

Prints one summary line
    autobahn (LABEL): N OK, N INFORMATIONAL, N NON-STRICT, N FAILED, N UNIMPLEMENTED; close behaviour not OK: N
then one line per case whose behaviour or close behaviour is not OK/INFORMATIONAL, e.g.
    case 6.4.1: NON-STRICT (behaviorClose OK)
and exits 1 if there is any such case (or no case at all), 0 otherwise.
"""

import json
import re
import sys

GOOD = ("OK", "INFORMATIONAL")
KINDS = ("OK", "INFORMATIONAL", "NON-STRICT", "FAILED", "UNIMPLEMENTED")


def case_key(case_id):
    return [int(p) if p.isdigit() else p for p in re.split(r"[.]", case_id)]


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    path = argv[1]
    label = argv[2] if len(argv) > 2 else "?"
    with open(path) as f:
        index = json.load(f)
    cases = {}
    for agent in index.values():
        cases.update(agent)
    counts = {k: 0 for k in KINDS}
    other = 0
    bad_close = 0
    bad_lines = []
    for case_id in sorted(cases, key=case_key):
        result = cases[case_id]
        behavior = result.get("behavior", "?")
        close = result.get("behaviorClose", "?")
        if behavior in counts:
            counts[behavior] += 1
        else:
            other += 1
        if close not in GOOD:
            bad_close += 1
        if behavior not in GOOD or close not in GOOD:
            bad_lines.append(
                "case %s: %s (behaviorClose %s)" % (case_id, behavior, close)
            )
    summary = "autobahn (io=%s): %s; close behaviour not OK: %d" % (
        label,
        ", ".join("%d %s" % (counts[k], k) for k in KINDS),
        bad_close,
    )
    if other:
        summary += "; other behaviour: %d" % other
    print(summary)
    for line in bad_lines:
        print(line)
    if not cases:
        print("autobahn (io=%s): the report lists no case" % label)
        return 1
    return 1 if bad_lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
