"""The HTTP layer: bodies read and bounded (`bodies`), the guard around every request (`guard`), the drain
state (`traffic`), the route table and its handlers (`routes`), and what /docs publishes (`openapi`)."""
