"""PDE data generators: Navier–Stokes, shallow water, advection."""
