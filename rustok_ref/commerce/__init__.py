"""Commerce: products, orders with typed state machines, event-sourced aggregates."""
