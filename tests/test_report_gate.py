"""End to end: runs → the real `releasectl gate` → `releasectl report`, with hostile model output."""

from __future__ import annotations

import re
from pathlib import Path

from runfactory import case_row, write_run
from test_report import HOSTILE, assert_safe, fences

RULES = """aggregate.success@1.lower_ci >= 0.6
no_regressions_on: ['math_basic']
latency_p95_ms.point <= 900
delta.success@1{math_basic}.p_value < 0.05
"""


def make_runs(tmp_path: Path) -> tuple[Path, Path]:
    cand, base = [], []
    for slice_name, kind in (("math_basic", "format"), ("headache_redflags", "rule")):
        for i in range(30):
            cid = f"{slice_name}-{i:03d}"
            c_ok, b_ok = i % 5 != 0, i % 3 != 0
            output = "fine" if c_ok else HOSTILE[i % len(HOSTILE)] + "\n" + "x" * 3000
            cand.append(case_row(cid, slice_name, {"answer_tag": (c_ok, kind)}, output=output))
            base.append(case_row(cid, slice_name, {"answer_tag": (b_ok, kind)}))
    return write_run(tmp_path / "cand", "v1.3", cand), write_run(tmp_path / "base", "v1.2", base)


def test_real_gate_json_renders_safely(cli, tmp_path: Path) -> None:
    cand, base = make_runs(tmp_path)
    rules = tmp_path / "rules.txt"
    rules.write_text(RULES)
    gate = tmp_path / "gate.json"
    result = cli(
        "gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules), "--out", str(gate)
    )
    assert result.code == 1, result.output  # the p-value rule fails: block
    report = tmp_path / "report.md"
    assert cli("report", str(gate), "--out", str(report)).code == 0
    md = report.read_text()
    assert_safe(md)
    assert md.startswith("<!-- releasectl:gate release=v1.3 -->\n## ❌ Release gate: v1.3 — BLOCK")
    assert "| ❌ | delta.success@\u200d1{math\\_basic}.p\\_value &lt; 0.05 (line 4) | 0.775 |" in md
    assert "| 0 (baseline) |" in md  # the threshold's source text, not just the number
    assert re.search(
        r"\| math\\_basic \| 30 \| 0\.667 \| 0\.8 \| `[─━●]{20}` \[0\.627, 0\.905\] \| \+0\.133 \| 0\.388 \(0\.775\) \|",
        md,
    )
    assert "12 failing cases." in md and len(fences(md)) == 12
    assert all("[truncated" in f for f in fences(md))


def test_status_from_a_real_gate(cli, tmp_path: Path) -> None:
    from releasectl.github.statuses import describe_gate
    from releasectl.report.gate_file import load_gate

    cand, base = make_runs(tmp_path)
    rules = tmp_path / "rules.txt"
    rules.write_text(RULES.splitlines()[0] + "\n")
    gate = tmp_path / "gate.json"
    assert (
        cli(
            "gate", "--run", str(cand), "--baseline-run", str(base), "--rules", str(rules), "--out", str(gate)
        ).code
        == 0
    )
    state, description = describe_gate(load_gate(gate))
    assert state == "success" and description.startswith("PROMOTE v1.3 vs v1.2: the 1 rule passes")
    assert len(description) <= 140
