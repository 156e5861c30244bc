"""Sagas: an orchestrator with a persisted log, recovery, and the review's sketch for comparison."""
