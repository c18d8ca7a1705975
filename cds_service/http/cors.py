"""CORS on every response: the CDS Hooks sandbox calls the service from a browser."""

from flask import Flask

from cds_service.settings import Settings


def add_cors(app: Flask, settings: Settings) -> None:
    @app.after_request
    def add_cors_headers(response):
        response.headers["Access-Control-Allow-Origin"] = settings.cors_allow_origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Allow-Private-Network"] = "true"
        response.headers["Access-Control-Max-Age"] = "600"
        return response
