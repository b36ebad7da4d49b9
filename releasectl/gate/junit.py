"""gate.json as JUnit XML: one <testcase> per rule, for CI tools that read JUnit (issue 15).

The shape follows the common JUnit schema (the Jenkins/Ant `junit-10.xsd`): a <testsuites> root,
one <testsuite> with tests/failures/errors/skipped counts, and a <testcase> per rule carrying
<failure> for a failing rule and <skipped> for an inconclusive one.
"""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET

from releasectl.contracts.gate import GateRecord

# Characters XML 1.0 cannot carry at all, even escaped: control characters other than \t \n \r.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _text(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def junit_xml(record: GateRecord) -> str:
    """The JUnit document for one gate result."""
    rules = record.rules
    failures = sum(1 for r in rules if r.outcome == "fail")
    skipped = sum(1 for r in rules if r.outcome == "inconclusive")
    suite_name = f"releasectl gate {record.release}" + (f" ({record.stage})" if record.stage else "")
    root = ET.Element(
        "testsuites",
        name="releasectl",
        tests=str(len(rules)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=_text(suite_name),
        tests=str(len(rules)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        timestamp=_text(record.created_at.rstrip("Z")),
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", record.verdict),
        ("verdict_reason", record.verdict_reason),
        ("baseline_release", record.baseline_release or ""),
        ("manifest_digest", record.manifest_digest),
    ):
        ET.SubElement(props, "property", name=name, value=_text(value))
    for r in rules:
        case = ET.SubElement(
            suite,
            "testcase",
            name=_text(r.rule),
            classname=_text((r.source or "rules").replace("/", ".")),
            time="0",
        )
        where = f"{r.source}:{r.line}: " if r.source else ""
        body = f"{where}{r.metric}: observed {r.observed}, {r.comparator} {r.threshold_expr}; {r.detail}"
        if r.outcome == "fail":
            ET.SubElement(
                case, "failure", message=_text(r.detail or "rule fails"), type="RuleFailed"
            ).text = _text(body)
        elif r.outcome == "inconclusive":
            ET.SubElement(case, "skipped", message=_text(r.detail or "inconclusive"))
        ET.SubElement(case, "system-out").text = _text(body)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
