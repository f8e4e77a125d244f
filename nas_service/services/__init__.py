"""Service functions: the one implementation behind each CLI command and API route."""
