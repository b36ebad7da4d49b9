"""The feedback-to-data flywheel: mine failures and successes from inference logs, clean them
(filter, dedup, bias audit, PII scrub), cluster failure modes, and write SFT and preference pairs."""
