"""One failed JUnit testcase per failing criterion, so a CI that reads ``junit.xml`` sees what the report and the
exit status say (a baseline regression or a leaked secret fails no pytest test, yet fails the run)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from clusterproof.findings import RunVerdict
from clusterproof.redact import redact

CLASSNAME = "clusterproof.scorecard"


def add_failing_criteria(path: Path, verdict: RunVerdict) -> int:
    """Append to the JUnit XML at ``path`` a ``<testcase classname="clusterproof.scorecard" name="<criterion id>">``
    with a ``<failure>`` for each failing criterion (its failing findings as the text), and raise the suite's
    ``tests``/``failures`` counts to match. Idempotent: a criterion already there is not added twice.

    Returns:
        The number of testcases added.
    """
    tree = ET.parse(path)
    root = tree.getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        suite = ET.SubElement(root, "testsuite", {"name": "clusterproof", "tests": "0", "failures": "0", "errors": "0"})
    have = {tc.get("name") for tc in suite.findall("testcase") if tc.get("classname") == CLASSNAME}
    added = 0
    for crit in verdict.failing():
        if crit.criterion.value in have:
            continue
        case = ET.SubElement(suite, "testcase", {"classname": CLASSNAME, "name": crit.criterion.value, "time": "0"})
        failure = ET.SubElement(case, "failure", {"message": redact(f"{crit.criterion.heading}: {crit.headline}")[:1000]})
        failure.text = redact("\n".join(f.line + (f" [{f.test_id}]" if f.test_id else "")
                                        for f in crit.failures))
        added += 1
    if added:
        for attr in ("tests", "failures"):
            suite.set(attr, str(int(suite.get(attr, "0")) + added))
        if root is not suite:
            for attr in ("tests", "failures"):
                if root.get(attr) is not None:
                    root.set(attr, str(int(root.get(attr, "0")) + added))
        tree.write(path, encoding="utf-8", xml_declaration=True)
    return added
