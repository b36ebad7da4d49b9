"""Statistics shared by the gate, the canary and the rollout: anytime-valid confidence sequences."""
