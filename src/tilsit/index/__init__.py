"""The domain: indexes, projects, releases, files; upload, yank and delete."""
