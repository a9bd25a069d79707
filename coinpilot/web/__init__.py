"""The read-only operator dashboard served by the daemon's own HTTP server.

Pages (/, /market, /history, /risk, /system) are rendered on the server from the same
payloads the JSON API (/api/...) returns, so the two can never disagree. Nothing here
writes: every route is a GET and every query is bounded by an index and a LIMIT.
"""
