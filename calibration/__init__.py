"""INT8 calibration: frames, methods, Q/DQ graphs and reusable caches."""
