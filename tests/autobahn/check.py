#!/usr/bin/env python3
"""Summarises an Autobahn|TestSuite fuzzingclient report (reports/servers/index.json).

Usage: check.py INDEX_JSON [LABEL [WSTEST_LOG]]

WSTEST_LOG is wstest's own output of the run; its "Cases = [...]" line is the list of cases the
run was to execute. Every one of them must be in the report (a run that stopped half-way leaves
a partial report, whose cases may all be OK).

Prints one summary line
    autobahn (LABEL): N OK, N INFORMATIONAL, N NON-STRICT, N FAILED, N UNIMPLEMENTED; close behaviour not OK: N
then one line per case whose behaviour or close behaviour is not OK/INFORMATIONAL, e.g.
    case 6.4.1: NON-STRICT (behaviorClose OK)
or that the run was to execute but the report lacks, e.g.
    case 9.1.1: missing from the report
and exits 1 if there is any such case (or no case at all), 0 otherwise.
"""

import json
import re
import sys

GOOD = ("OK", "INFORMATIONAL")
KINDS = ("OK", "INFORMATIONAL", "NON-STRICT", "FAILED", "UNIMPLEMENTED")


def case_key(case_id):
    return [int(p) if p.isdigit() else p for p in re.split(r"[.]", case_id)]


def expected_cases(log_path):
    """The case ids wstest announced ("Cases = [u'1.1.1', ...]"), or None without that line."""
    with open(log_path) as f:
        for line in f:
            if line.startswith("Cases = "):
                return re.findall(r"['\"]([0-9][0-9.]*)['\"]", line)
    return None


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
    missing = []
    if len(argv) > 3:
        expected = expected_cases(argv[3])
        if expected is None:
            print("autobahn (io=%s): %s names no cases (no \"Cases = \" line)" % (label, argv[3]))
            return 1
        missing = sorted(set(expected) - set(cases), key=case_key)
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
    if missing:
        summary += "; missing from the report: %d" % len(missing)
        bad_lines += ["case %s: missing from the report" % c for c in missing]
    print(summary)
    for line in bad_lines:
        print(line)
    if not cases:
        print("autobahn (io=%s): the report lists no case" % label)
        return 1
    return 1 if bad_lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
