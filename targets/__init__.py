"""Target descriptions and emitters (installed as `irtool.targets`)."""
