"""The rules engine: declarative rules (rules/*.toml) evaluated incrementally over the event
stream, with artifact checks that confirm or refute a match, aggregated into Findings."""
