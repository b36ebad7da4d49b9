"""Verifier families, one module each. Importing a module registers its verifiers."""
