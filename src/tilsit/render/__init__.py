"""Journal -> static tree: pure page builders plus the atomic tree writer."""
