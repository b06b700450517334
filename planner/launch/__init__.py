"""Launch configs for serving engines, one module per engine."""
