"""The run directory (SPEC §5.1): what a replay writes, appends and finalises.

```
runs/<release>/
  run.json        provenance: manifest and suite digests, runtime, device, seed, timings, output digest
  results.jsonl   one line per case and sample, sorted by (case id, sample) when the run completes
  .state.json     what the run is (manifest, suite, engine, limit, shard) so --resume continues only the same run
```
Rows are appended and fsynced batch by batch, so a killed replay loses at most the batch in
flight; a torn last line is cut on resume. run.json appears only when the run is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from releasectl.errors import BadInput
from releasectl.fsutil import atomic_write_text

RESULTS = "results.jsonl"
RUN_JSON = "run.json"
STATE = ".state.json"


@dataclass
class RunSummary:
    run_dir: Path
    run: dict[str, Any]
    slices: dict[str, dict[str, Any]] = field(default_factory=dict)


def row_key(row: dict[str, Any]) -> tuple[str, int]:
    """A row's identity: (case id, sample index); a row without `sample` is sample 0."""
    return (row["case_id"], row.get("sample") or 0)


def output_digest(rows: list[dict[str, Any]]) -> str:
    """sha256 over what the model produced, in (case id, sample) order (timings are not outputs).

    A sample other than 0 adds its index to its line; sample 0 hashes as a row did before
    repeated sampling existed, so one-sample runs keep their digests."""
    h = hashlib.sha256()
    for row in sorted(rows, key=row_key):
        key = {k: row[k] for k in ("case_id", "output", "prompt_tokens", "completion_tokens")}
        if row.get("sample"):
            key["sample"] = row["sample"]
        h.update(json.dumps(key, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return "sha256:" + h.hexdigest()


def read_results(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Rows of a results.jsonl this writer wrote, each checked against the results contract.

    A torn last line (a writer killed mid-line) is dropped, and with `repair` cut from the file so
    appends continue cleanly; any other bad line is bad input, named by file and line."""
    from releasectl.safeio import read_bytes

    if not path.exists():
        return []
    data = read_bytes(path, what="results", gunzip=False, max_bytes=4 << 30)
    lines = data.splitlines(keepends=True)
    rows: list[dict[str, Any]] = []
    good_end = 0
    for number, line in enumerate(lines, start=1):
        last = number == len(lines)
        try:
            row = json.loads(line)
        except ValueError:
            if last:
                break  # torn: the writer was killed mid-line
            raise BadInput(f"{path}:{number}: not a JSON object (the run directory is damaged)") from None
        if not line.endswith(b"\n"):
            break  # torn at a point where the fragment happens to parse
        rows.append(_checked_row(row, path, number))
        good_end += len(line)
    if repair and good_end != len(data):
        with path.open("r+b") as f:
            f.truncate(good_end)
    return rows


def _checked_row(row: Any, path: Path, line: int) -> dict[str, Any]:
    from pydantic import ValidationError

    from releasectl.contracts._types import problems_of
    from releasectl.contracts.results import ResultRow

    try:
        return ResultRow.model_validate(row).model_dump(mode="json", exclude_unset=True)
    except ValidationError as e:
        raise BadInput(
            f"{path}:{line}: not a valid results row", problems_of(e, file=str(path), line=line)
        ) from None


def slice_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per slice: cases, passed (samples that passed), success@1 (mean over samples); with
    several samples per case also `samples` (rows)."""
    out: dict[str, dict[str, Any]] = {}
    cases: dict[str, set[str]] = {}
    for r in rows:
        s = out.setdefault(r["slice"], {"cases": 0, "passed": 0, "samples": 0})
        cases.setdefault(r["slice"], set()).add(r["case_id"])
        s["samples"] += 1
        s["passed"] += bool(r["passed"])
    for name, s in out.items():
        s["cases"] = len(cases[name])
        s["success_at_1"] = round(s["passed"] / s["samples"], 4) if s["samples"] else None
        if s["samples"] == s["cases"]:
            del s["samples"]  # one sample per case: the summary reads as it always did
    return dict(sorted(out.items()))


def count_cases(rows: list[dict[str, Any]]) -> int:
    """Distinct case ids (rows are cases × samples)."""
    return len({r["case_id"] for r in rows})


def dump_rows(rows: list[dict[str, Any]]) -> bytes:
    """results.jsonl lines, each written through the results contract (ResultRow)."""
    from releasectl.contracts.results import ResultRow

    return b"".join(ResultRow.model_validate(r).dump_line() for r in rows)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """results.jsonl in (case id, sample) order, atomically."""
    from releasectl.fsutil import atomic_write_bytes

    atomic_write_bytes(path, dump_rows(sorted(rows, key=row_key)))


def write_run(path: Path, run: dict[str, Any]) -> dict[str, Any]:
    """run.json through the run contract (RunRecord), atomically; returns what was written."""
    from releasectl.contracts.run import RunRecord

    record = RunRecord.model_validate(run)
    record.write(path)
    return record.model_dump(mode="json", exclude_unset=True)


class RunDirectory:
    """One replay's directory: started fresh or resumed, appended to, then finalised."""

    def __init__(self, path: Path, state: dict[str, Any]) -> None:
        self.path = path
        self.state = state
        self.generation_seconds = 0.0
        self.rows: list[dict[str, Any]] = []
        self._sink: IO[bytes] | None = None

    @property
    def done(self) -> set[tuple[str, int]]:
        """The (case id, sample) of every row written."""
        return {row_key(r) for r in self.rows}

    def prepare(self) -> None:
        """Make sure the directory can be written, before any slow work (the model load) starts."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise BadInput(
                f"cannot write the run directory {self.path}: {e.strerror or e}",
                hint="choose a writable directory with --out",
            ) from None

    def start(self, *, resume: bool) -> None:
        """Prepare the directory: keep what a resumable run of the same plan wrote, else start over."""
        self.prepare()
        results = self.path / RESULTS
        state_file = self.path / STATE
        if resume and state_file.exists():
            from releasectl.safeio import read_json

            try:
                previous = read_json(state_file, what="resume state")
            except BadInput:
                raise BadInput(
                    f"{state_file}: unreadable resume state",
                    hint="start over without --resume, or use another --out",
                ) from None
            seconds = previous.pop("generation_seconds", 0.0) if isinstance(previous, dict) else 0.0
            if previous != self.state:
                diffs = ", ".join(_differences(previous if isinstance(previous, dict) else {}, self.state))
                raise BadInput(
                    f"{self.path} holds a different run ({diffs})",
                    hint="resume with the same manifest, suite, engine, --limit and --shard, or use another --out",
                )
            self.generation_seconds = float(seconds) if isinstance(seconds, int | float) else 0.0
            self.rows = read_results(results, repair=True)
        else:
            results.unlink(missing_ok=True)
            (self.path / RUN_JSON).unlink(missing_ok=True)
            atomic_write_text(state_file, json.dumps(self.state, indent=2))
        self._sink = results.open("ab")

    def append(self, rows: list[dict[str, Any]], seconds: float) -> None:
        """Append a batch's rows durably, then record the time spent (for resumed runs' totals)."""
        assert self._sink is not None, "start() first"
        self._sink.write(dump_rows(rows))
        self._sink.flush()
        os.fsync(self._sink.fileno())
        self.rows.extend(rows)
        self.generation_seconds += seconds
        atomic_write_text(
            self.path / STATE,
            json.dumps({**self.state, "generation_seconds": round(self.generation_seconds, 3)}, indent=2),
        )

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def finish(self, run: dict[str, Any]) -> RunSummary:
        """Sort results.jsonl, then write run.json: the run is complete only once run.json exists."""
        self.close()
        write_rows(self.path / RESULTS, self.rows)
        run = write_run(
            self.path / RUN_JSON,
            {
                **run,
                "output_digest": output_digest(self.rows),
                "cases": count_cases(self.rows),
                "generations": len(self.rows),
            },
        )
        return RunSummary(self.path, run, slice_summary(self.rows))


def _differences(before: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """What differs between two resume states, as `key: before → now`, nested keys dotted (a
    sequential replay's options are one nested record) and long values cut."""

    def show(value: Any) -> str:
        text = "(none)" if value is None else repr(value)
        return text if len(text) <= 60 else text[:57] + "…"

    out: list[str] = []
    for key in dict.fromkeys([*before, *now]):
        a, b = before.get(key), now.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif key == "schedule" and not prefix:  # the options of replay --sequential, or none
            plain, seq = "a full replay", "a --sequential replay"
            out.append(f"{seq if a else plain} → {seq if b else plain}")
        else:
            out.append(f"{prefix}{key}: {show(a)} → {show(b)}")
    return out or ["the resume state's format"]
