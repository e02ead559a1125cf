"""Use cases: intake, staff actions, clocks and escalation; they take ports and return results."""
