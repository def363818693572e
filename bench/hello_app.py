"""`python -m bench.hello_app PORT`: a Flask hello world served exactly like the services are
(shared.server.serve: gunicorn, one gthread worker), the ceiling for every REST figure."""
from __future__ import annotations

import sys
from types import SimpleNamespace

from flask import Flask

from shared.server import serve


def create_app(settings: object) -> Flask:
    app = Flask("hello")

    @app.get("/")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


def main(argv: list[str]) -> int:
    port = int(argv[0])
    address = SimpleNamespace(name="hello", host="127.0.0.1", port=port)
    settings = SimpleNamespace(service=lambda name: address, log_level="WARNING", log_format="human", mqtt=None)
    serve(create_app, settings, "hello")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
