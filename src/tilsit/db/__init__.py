"""The database: models, engine and sessions, migrations, the journal."""
