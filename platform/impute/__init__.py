"""``incdyn impute``: a whole gridded record in, the same record filled out (with spread,
intervals and an observation flag), by a trained model or a classical method."""
