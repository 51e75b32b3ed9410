"""The online decision service (BentoML)."""
