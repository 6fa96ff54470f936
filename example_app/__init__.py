"""The asgi-mtls demo: a FastAPI service that knows which client is calling.

``python -m example_app`` generates a local development PKI on first run and serves the app
with real mutual TLS on https://localhost:8443 (uvicorn through ``asgi_mtls.uvicorn``).
"""
