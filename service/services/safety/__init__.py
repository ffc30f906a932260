"""Production safety: lint of the SQL a change would run, lock bounds, checksums, drift."""
