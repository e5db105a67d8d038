"""External data sources: ERA5 and the public Navier–Stokes set."""
