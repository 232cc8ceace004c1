"""Messages that must reach people, delivered from a durable outbox (see `outbox`)."""
