"""Traffic-step rollouts (seed 004: 5 % → 20 % → 50 % → 100 %), each step gated by an analysis
that stays valid however often it is looked at.

- `plan`: the step plan and the rollout record each history event carries (pure);
- `analysis`: seed 004's relative gate on canary vs baseline observation arrays, decided by the
  anytime-valid confidence sequences of `releasectl.stats.sequential` (pure: any metrics source,
  request logs or Prometheus, calls it with arrays);
- `observations`: request logs (the monitor's reader) → observation arrays for a step's window;
- `steps`: the verbs (start, analyze, advance, pause, resume, abort) as channel moves.
"""
