"""One reader per raw data format; each returns a `RawData` for the protocol."""
