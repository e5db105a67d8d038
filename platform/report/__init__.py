"""Reports rebuilt from MLflow: tables, claims and figures."""
