"""Training: the Trainer, schedules, devices and precision, run directories. Imports models and below."""
