"""Stage 6, patch: config.pbtxt gets EXECUTION_ENV_PATH, byte-preserving."""
