"""The ASGI app: read routes served from the tree, upload, operations."""
