"""The HTTP interface (default port 8000): native messages tunnelled over HTTP (wire.md 13), the REST JSON API
(server.md 14) and the proxy pages for people, on one port that speaks HTTP and HTTPS (server.md 3.2).

Every request ends up in the same ``Dispatcher`` as UDP and TCP requests; this package only translates.
"""
