"""TUF (PEP 458) signing of the static tree: keys, per-index repositories, freshness."""
