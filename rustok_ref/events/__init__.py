"""Events: envelope and catalogue, validation, outbox, relay, dispatcher, projections, store."""
