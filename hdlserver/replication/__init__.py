"""Replication with Java servers (replication.md): the primary side serves ops 1000-1003 from the
transaction log (source.py, streams.py, sender.py); the mirror side pulls them (mirror.py, puller.py)."""
