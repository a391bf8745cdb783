"""The desktop app's Qt-free services: the heads caches (memory and disk), the live model, batch jobs,
tuning sweeps, review summaries, template landmarks, thumbnails and heatmap views. Everything the app
shows is computed here and testable without a display."""
