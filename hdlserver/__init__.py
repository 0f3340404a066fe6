"""hdlserver: a pure-Python Handle System server wire-compatible with Handle.Net 9.2."""
