"""Journal -> static tree: pure page builders and the follower that writes them through
the atomic tree writer (:mod:`tilsit.store.tree`) and has them signed."""
