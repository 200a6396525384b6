"""Training: Lightning modules, data modules and one entry point per stage."""
