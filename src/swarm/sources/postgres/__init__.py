"""PostgreSQL: local cluster control, connections and facts, pg_dump / pg_restore."""
