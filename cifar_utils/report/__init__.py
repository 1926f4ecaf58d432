"""The report: papermill runner, HTML rendering, the landing page and results.md. Imports core, runs and analysis."""
