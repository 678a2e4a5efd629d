"""The numpy interpreter that executes every irtool IR level."""
