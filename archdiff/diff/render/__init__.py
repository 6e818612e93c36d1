"""Renderers of an ArchDiff: text, JSON and Markdown reports (``reports``), the HTML page (``html``)."""
