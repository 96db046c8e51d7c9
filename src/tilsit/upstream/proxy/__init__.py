"""Pull-through proxy indexes: project pages fetched on demand, files on first request.

``fill`` (the :class:`~tilsit.upstream.proxy.fill.Proxy` of a process: upstream
clients and page refreshes, single flight), ``filefill`` (cold files: fetched once,
stored, marked cached), ``files`` (one file's fetch, shared by every reader),
``pages`` (outcomes, and a page answered before the tree has it), ``writes`` (the
coalescer: one transaction and one catch-up for many fills), ``index`` (a proxy
index's options), ``expiring`` (the bounded per-process memory).
"""
