"""Search across indexes: documents kept current from the journal, and queries over them.

- :mod:`tilsit.search.documents`: what one (index, project) document holds, built
  from the project's latest release's core metadata.
- :mod:`tilsit.search.follow`: the journal follower that keeps documents current.
- :mod:`tilsit.search.names`: names as a query matches them (exact, prefix, typo).
- :mod:`tilsit.search.query`: the ranked query, on SQLite (FTS5) and PostgreSQL.
- :mod:`tilsit.search.viewer`: which indexes and projects a viewer's results may name.
- :mod:`tilsit.search.schema`: the tables of the search index that are not models.
"""
