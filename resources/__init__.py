"""DeepMark Studio's bundled data, installed as ``deepmark.resources``: the taxonomy JSON, the default model,
the demo images and the icons. Read through ``deepmark.core.util.resources``; no code lives here."""
