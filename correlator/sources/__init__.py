"""Where lines come from: files (plain, .gz, .bz2), bundles (folders and archives) and live tails.
Every source produces byte lines with their offsets; parsing happens one layer up, so batch and
live reading feed the same pipeline."""
