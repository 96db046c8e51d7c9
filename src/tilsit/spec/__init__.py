"""Models of the packaging standards.

Modules here import nothing else of tilsit: everything else may import them.
"""
