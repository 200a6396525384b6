"""Reports: result files, tables and plots."""
