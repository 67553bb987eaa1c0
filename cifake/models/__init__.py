"""Models and scoring: the model registry, the whitening stem, Detector (the one scorer), LiteRT,
Grad-CAM, calibration, figures and the shipped presets. Imports data, config and base."""
