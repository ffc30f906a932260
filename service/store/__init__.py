"""The only package that reads or writes migctl's control tables."""
