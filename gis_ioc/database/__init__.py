"""Database access: the embedded cluster, connections and the pool, migrations."""
