"""The harness: infra, faults, claims, code metrics, reports. Nothing in the product imports it."""
