"""The general gridded source's parts: its config, opening, time windows, domain and reads."""
