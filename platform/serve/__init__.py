"""Ray Serve imputation: the deployment, its wire format and a client."""
