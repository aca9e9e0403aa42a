"""Declarative log formats: loading and validating the TOML files in `parsers/`, detecting which
format a file is in, and turning lines into Events. The formats are data; this package is the
small engine that runs them."""
