"""One pydantic model per file that crosses a stage boundary; each is that file's one reader and writer.

`run.py` (run.json), `results.py` (a results.jsonl row), `gate.py` (gate.json), `canary.py`
(canary.json); `history.py` and `channels.py` for the audit log. The shared strict types and the
rendering of a validation error as `Problem`s (file:line plus field path) live in `_types.py`.
"""
