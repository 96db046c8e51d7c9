"""Other indexes as sources: the client, page parsing, mirror sync and filters.

``errors`` (the exception hierarchy) and ``pages`` (reading simple pages) import
nothing of tilsit but the spec layer and the upstream dataclasses; ``client``
is the HTTP edge; ``sync`` and ``filters`` sit above them.
"""
