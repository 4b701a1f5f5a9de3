"""The typed core: what every other package speaks in. It imports nothing from the database,
FastAPI or the scheduler: feature specs and kinds, drift settings, status names, the time range
and time helpers, and the run result with its one metric vocabulary."""
