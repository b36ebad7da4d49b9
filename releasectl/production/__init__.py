"""Production: monitor inference logs, detect drift and reward collapse, analyse canaries, and
turn logs into training data (the feedback flywheel). The log schema is in docs/logs.md."""
