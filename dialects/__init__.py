"""irtool's dialects, one per module (installed as `irtool.dialects`)."""
