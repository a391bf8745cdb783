"""Generic helpers that know nothing of garments: atomic file writes, an LRU mapping, bundled resources."""
