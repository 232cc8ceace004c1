"""Pure Block Kit builders: domain objects in, JSON-able lists out. No I/O here."""
