"""The lowest layer: errors, text, bounds on untrusted input, signals, logging, progress, metrics,
file writing and every private Keras/TensorFlow use (compat). Imports nothing else of cifake."""
