"""The reporting stage: the department's monthly per-pilot figures, from the live streams."""
